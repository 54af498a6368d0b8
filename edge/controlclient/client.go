package controlclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

// Client is an edge's HTTP client of the control plane's edge API
// (controlplane/edgeapi.go): it follows the snapshot feed (Feed), applying
// deltas to the snapshot it last received, reports the edge's agent
// sessions (Reporter), and polls for operator commands on them
// (CommandSource), learning the live edges of every region from both
// (edge.EdgeDirectory). It is what a standalone `tollgated edge --control
// URL` gives its Sync; `tollgated dev` gives Sync the control plane
// in-process instead. Safe for concurrent use.
type Client struct {
	base   *url.URL
	secret string // Secret: never logged.
	info   snapshot.EdgeInfo
	http   *http.Client
	wait   time.Duration
	log    *zap.Logger

	mu           sync.Mutex
	last         *snapshot.Snapshot  // the newest snapshot this client returned
	edges        []snapshot.EdgeInfo // from the last report's or command poll's answer
	edgesVersion uint64              // of edges, from the command poll

	// trafficBinary: the control plane's traffic answers list
	// traffic.BinaryEncoding (PostTraffic).
	trafficBinary atomic.Bool
}

// ClientConfig configures NewClient.
type ClientConfig struct {
	// URL is the control plane's API base URL, http:// or https://.
	URL string
	// Secret is the control plane's edge secret.
	Secret string
	// EdgeID, Region and AgentAddr identify this edge in its reports.
	EdgeID, Region, AgentAddr string
	// PeerAddr is the edge-to-edge address the reports advertise to the
	// region's other edges (snapshot.EdgeInfo.PeerAddr); "" = none.
	PeerAddr string
	// TLS configures https:// connections (root CAs). Default: system roots.
	TLS *tls.Config
	// Wait is how long one feed request or command poll waits for a
	// change. Default 25s.
	Wait time.Duration
	// Logger receives a line whenever the live edges change. Default: no
	// logs.
	Logger *zap.Logger
}

// NewClient validates cfg and returns the client. It does not connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, codes.NewError(codes.EdgeBadRequest,
			"the control plane URL %q is not valid: give http(s)://HOST:PORT", cfg.URL)
	}
	if cfg.Secret == "" {
		return nil, codes.NewError(codes.EdgeAuth, "an edge needs the control plane's edge secret")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 25 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	return &Client{
		log:    cfg.Logger,
		base:   u,
		secret: cfg.Secret,
		info:   snapshot.EdgeInfo{ID: cfg.EdgeID, Region: cfg.Region, AgentAddr: cfg.AgentAddr, PeerAddr: cfg.PeerAddr},
		http:   &http.Client{Transport: tr},
		wait:   cfg.Wait,
	}, nil
}

// SetAgentAddr sets the agent address the edge's reports advertise, for an
// edge that learns it only once it listens. Call it before the edge serves.
func (c *Client) SetAgentAddr(addr string) {
	c.mu.Lock()
	c.info.AgentAddr = addr
	c.mu.Unlock()
}

// SetPeerAddr sets the edge-to-edge address the edge's reports advertise,
// for an edge that learns it only once it listens. Call it before the
// edge serves.
func (c *Client) SetPeerAddr(addr string) {
	c.mu.Lock()
	c.info.PeerAddr = addr
	c.mu.Unlock()
}

// Snapshot returns a snapshot newer than after, waiting for the control
// plane to have one (Feed). A delta is applied to the snapshot
// this client returned last; when after is not that one's revision (the
// edge started from its persisted copy), it asks for a whole snapshot. It
// returns an older revision than after only when the control plane's store
// was reset (the edge takes it).
func (c *Client) Snapshot(ctx context.Context, after uint64) (*snapshot.Snapshot, error) {
	for {
		c.mu.Lock()
		base := c.last
		c.mu.Unlock()
		ask := after
		if base == nil || base.Revision() != after {
			ask = 0 // we cannot apply a delta to what we do not hold
		}
		snap, err := c.fetch(ctx, ask, base)
		if err != nil {
			return nil, err
		}
		if snap == nil {
			continue // nothing new within the wait: ask again
		}
		c.mu.Lock()
		c.last = snap
		c.mu.Unlock()
		if ask == 0 && snap.Revision() == after && after != 0 {
			// A whole snapshot of the revision the edge already holds:
			// wait for the next one.
			after = snap.Revision()
			continue
		}
		return snap, nil
	}
}

// fetch performs one feed request. It returns nil, nil on 204.
func (c *Client) fetch(ctx context.Context, after uint64, base *snapshot.Snapshot) (*snapshot.Snapshot, error) {
	resp, err := c.get(ctx, "/edge/v1/snapshot", url.Values{"after": {strconv.FormatUint(after, 10)}}, "snapshot feed")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("snapshot feed: %w", responseError(resp))
	}
	// Not strict: a newer control plane may send fields this edge does not
	// know, and its revocations must still apply (snapshot.FeedVersion).
	msg, err := snapshot.DecodeFeedMessage(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("snapshot feed: %w", err)
	}
	switch {
	case msg.Snapshot != nil:
		return snapshot.New(*msg.Snapshot)
	case msg.Delta != nil && base != nil:
		next, err := base.Apply(msg.Delta)
		if err != nil {
			// Ask for a whole snapshot next time rather than the same
			// delta again.
			c.mu.Lock()
			if c.last == base {
				c.last = nil
			}
			c.mu.Unlock()
			return nil, fmt.Errorf("snapshot feed: %w", err)
		}
		return next, nil
	}
	return nil, errors.New("snapshot feed: the answer holds neither a snapshot nor a delta this edge can apply")
}

// ReportSessions sends the edge's complete session list (Reporter).
func (c *Client) ReportSessions(ctx context.Context, region string, sessions []snapshot.AgentSession) error {
	c.mu.Lock()
	rep := snapshot.EdgeReport{EdgeID: c.info.ID, Region: region, AgentAddr: c.info.AgentAddr, PeerAddr: c.info.PeerAddr, Sessions: sessions}
	c.mu.Unlock()
	if rep.Sessions == nil {
		rep.Sessions = []snapshot.AgentSession{}
	}
	resp, err := c.send(ctx, http.MethodPut, "/edge/v1/sessions", &rep, http.StatusOK, "reporting sessions")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ans snapshot.EdgeReportAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ans); err != nil {
		return fmt.Errorf("reporting sessions: decoding the answer: %w", err)
	}
	c.mu.Lock()
	c.edges = ans.Edges
	c.mu.Unlock()
	return nil
}

// Edges returns the live edges the control plane listed in its latest
// answer to a session report or a command poll (edge.EdgeDirectory).
func (c *Client) Edges() []snapshot.EdgeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.edges
}

// Commands waits up to the client's Wait for operator commands for this
// edge's sessions, or a change of the live edges (which it records for
// Edges), and returns the control plane's answer (CommandSource).
func (c *Client) Commands(ctx context.Context) (snapshot.EdgeCommands, error) {
	c.mu.Lock()
	known := c.edgesVersion
	c.mu.Unlock()
	resp, err := c.get(ctx, "/edge/v1/commands", url.Values{"edge_id": {c.info.ID}, "known": {strconv.FormatUint(known, 10)}}, "command poll")
	if err != nil {
		return snapshot.EdgeCommands{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return snapshot.EdgeCommands{}, fmt.Errorf("command poll: %w", responseError(resp))
	}
	var ans snapshot.EdgeCommands
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ans); err != nil {
		return snapshot.EdgeCommands{}, fmt.Errorf("command poll: decoding the answer: %w", err)
	}
	c.mu.Lock()
	c.edges, c.edgesVersion = ans.Edges, ans.EdgesVersion
	c.mu.Unlock()
	if ans.EdgesVersion != known {
		list := make([]string, 0, len(ans.Edges))
		for _, e := range ans.Edges {
			item := e.Region + "=" + e.AgentAddr
			if e.PeerAddr != "" {
				item += " peer=" + e.PeerAddr
			}
			list = append(list, item)
		}
		c.log.Info("live edges changed", zap.Strings("edges", list))
	}
	return ans, nil
}

// CommandResult posts how one command ended (CommandSource).
func (c *Client) CommandResult(ctx context.Context, res snapshot.EdgeCommandResult) error {
	res.EdgeID = c.info.ID
	resp, err := c.send(ctx, http.MethodPost, "/edge/v1/commands/results", &res, http.StatusNoContent, "posting a command result")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// responseError turns a non-success answer into an error carrying the
// control plane's code and message.
func responseError(resp *http.Response) error {
	var body struct {
		Code string `json:"error_code"`
		Msg  string `json:"msg"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &body) == nil && body.Code != "" {
		return codes.NewError(codes.Code(body.Code), "%s", body.Msg)
	}
	return fmt.Errorf("HTTP %d from the control plane", resp.StatusCode)
}

// get makes one authenticated long-poll GET of the edge API: query plus
// the client's wait, in seconds. The caller checks the status and closes
// the body; a transport error is prefixed by what.
func (c *Client) get(ctx context.Context, path string, query url.Values, what string) (*http.Response, error) {
	u := *c.base
	u.Path += path
	query.Set("wait", strconv.Itoa(int(c.wait/time.Second)))
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return resp, nil
}

// send makes one authenticated JSON request of the edge API and returns the
// response when its status is want (the caller closes the body); other
// answers become errors carrying the control plane's code, prefixed by what.
func (c *Client) send(ctx context.Context, method, path string, body any, want int, what string) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		return nil, fmt.Errorf("%s: %w", what, responseError(resp))
	}
	return resp, nil
}
