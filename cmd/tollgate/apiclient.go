package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAPIResponse bounds a response body the CLI reads (a list page of 100
// objects is far below it).
const maxAPIResponse = 16 << 20

// apiClient is a small client of the control plane's REST API
// (docs/api-compatibility.md): bearer API key, JSON bodies, the
// error body {error_code, status_code, msg, details}.
type apiClient struct {
	// base is the API's base URL without a trailing slash.
	base *url.URL
	// key is the API key. Secret: never printed.
	key string
	// http is the transport; its Timeout bounds each request.
	http *http.Client
	// userAgent is sent with every request.
	userAgent string
}

// newAPIClient validates baseURL (http or https, no query) and returns a
// client that authenticates with key.
func newAPIClient(baseURL, key string) (*apiClient, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(baseURL), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("the API URL %q is not valid: give http(s)://HOST[:PORT][/PATH]", baseURL)
	}
	return &apiClient{
		base:      u,
		key:       key,
		http:      &http.Client{Timeout: 60 * time.Second},
		userAgent: "tollgate-cli/" + version,
	}, nil
}

// apiError is an error answered by the API: its error body, or for a
// response that is not one, the status and the start of the body.
type apiError struct {
	// Status is the HTTP status of the response.
	Status int `json:"-"`
	// Code is the error_code, such as TG_250; "" when the body was not an
	// error body.
	Code string `json:"error_code"`
	// StatusCode is the status_code field of the body.
	StatusCode int `json:"status_code"`
	// Msg is the human message.
	Msg string `json:"msg"`
	// Details carries at least operation_id.
	Details map[string]string `json:"details"`
}

// Error returns "HTTP <status>: <msg> [<error_code>]", or
// "HTTP <status>: <body>" for a response that carried no error body.
func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Msg)
	}
	s := fmt.Sprintf("HTTP %d: %s [%s]", e.Status, e.Msg, e.Code)
	if op := e.Details["operation_id"]; op != "" {
		s += " (operation " + op + ")"
	}
	return s
}

// resolve returns the URL for path, which is either a path relative to the
// base URL ("/bot_users") or an absolute URL the API returned
// (next_page_uri). Of an absolute URL only its path below the base and its
// query are kept, so the API key is never sent to a host other than the
// configured one.
func (c *apiClient) resolve(path string, query url.Values) (string, error) {
	u := *c.base
	rel, err := url.Parse(path)
	if err != nil {
		return "", fmt.Errorf("bad API path %q: %w", path, err)
	}
	p := rel.Path
	if rel.IsAbs() {
		// next_page_uri carries the server's idea of its base URL, which
		// may differ from ours behind a proxy: keep the resource path.
		p = "/" + strings.TrimLeft(strings.TrimPrefix(p, c.base.Path), "/")
	}
	u.Path = c.base.Path + p
	q := rel.Query()
	for k, vs := range query {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// do sends one request and returns the response body of a 2xx answer (nil
// for 204). body, when not nil, is sent as JSON. A non-2xx answer is an
// *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body any) (json.RawMessage, error) {
	target, err := c.resolve(path, query)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Ngrok-Version", "2")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in our message already
		}
		return nil, fmt.Errorf("calling the API at %s: %w", c.base.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the API's answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, ae) != nil || ae.Code == "" || ae.Msg == "" {
			ae = &apiError{Status: resp.StatusCode, Msg: firstLine(data)}
		}
		return nil, ae
	}
	if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("the API answered %d with a body that is not JSON: %s", resp.StatusCode, firstLine(data))
	}
	return data, nil
}

// firstLine returns the start of a body for an error message.
func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
