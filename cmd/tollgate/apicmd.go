package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/policy"
)

// maxListPages bounds how many pages `list --all` follows (100 objects a
// page), so a server that keeps answering with a next_page_uri cannot make
// the CLI loop forever.
const maxListPages = 10000

// apiFlags are the flags of `tollgate api` and its subcommands.
type apiFlags struct {
	apiKey, apiURL string
	cmd            *cobra.Command
}

func newAPICmd(e *env) *cobra.Command {
	af := &apiFlags{}
	api := &cobra.Command{
		Use:   "api RESOURCE VERB [ID] [flags]",
		Short: "Call the control plane's REST API: create, list, get, update and delete objects",
		Long: `api calls the Tollgate control plane's REST API and prints its JSON answer,
indented, on stdout.

Each resource has the verbs create, list, get, update and delete (read-only
resources only list and get). Body fields have their own flags (see
'tollgate api RESOURCE create --help'); --body sets any field as JSON, and the
flags override it.

list prints one page, newest first: --limit (1-100) and --before-id choose it,
and next_page_uri in the answer names the next one. --all follows
next_page_uri and prints every object in one list.

The API key comes from --api-key, else TOLLGATE_API_KEY, else api_key in the
config file ('tollgate config add-api-key'). The API's base URL comes from
--api-url, else TOLLGATE_API_URL, else api_url in the config file, else
` + config.DefaultAPIURL + ` (tollgated dev).

An answer of 4xx or 5xx prints the API's message and error code (TG_nnn) on
stderr and exits with status 1; bad flags exit with status 2.`,
		Example: `  tollgate config add-api-key 2cSjw..._6Jxvym --api-url https://api.example.com
  tollgate api bot-users create --name ci
  tollgate api credentials create --owner-id bot_2cSjw... --acl 'bind:*.example.com'
  tollgate api api-keys create --owner-id bot_2cSjw... --description deploy
  tollgate api bot-users list --limit 10
  tollgate api credentials list --all
  tollgate api bot-users update bot_2cSjw... --active=false
  tollgate api bot-users delete bot_2cSjw...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	af.cmd = api
	pf := api.PersistentFlags()
	pf.StringVar(&af.apiKey, "api-key", "", "API key (env TOLLGATE_API_KEY, config file api_key)")
	pf.StringVar(&af.apiURL, "api-url", "", "base URL of the REST API (env TOLLGATE_API_URL, config file api_url; default "+config.DefaultAPIURL+")")
	for i := range apiResources {
		api.AddCommand(newAPIResourceCmd(e, af, &apiResources[i]))
	}
	return api
}

// client builds the API client from the flags, the environment and the
// config file, in that order.
func (af *apiFlags) client(e *env) (*apiClient, error) {
	key, base := af.apiKey, af.apiURL
	if !af.cmd.PersistentFlags().Changed("api-key") {
		key = e.getenv(config.EnvAPIKey)
	}
	if !af.cmd.PersistentFlags().Changed("api-url") {
		base = e.getenv(config.EnvAPIURL)
	}
	if key == "" || base == "" {
		f, _, err := e.global.loadFile(e.getenv, false)
		if err != nil {
			return nil, err
		}
		if key == "" {
			key = f.APIKey
		}
		if base == "" {
			base = f.APIURL
		}
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, codes.NewError(codes.ConfigInvalid,
			"No API key: give --api-key, set TOLLGATE_API_KEY, or save one with 'tollgate config add-api-key KEY'.")
	}
	if base == "" {
		base = config.DefaultAPIURL
	}
	c, err := newAPIClient(base, key)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "%v.", err)
	}
	return c, nil
}

func newAPIResourceCmd(e *env, af *apiFlags, res *apiResource) *cobra.Command {
	rc := &cobra.Command{
		Use:   res.name + " VERB",
		Short: res.short,
		Long: res.short + ".\n\nREST collection " + res.path + "; a list answer holds the objects under \"" +
			res.listKey + "\".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	if alias := strings.TrimPrefix(res.path, "/"); alias != res.name {
		rc.Aliases = []string{alias}
	}
	for _, verb := range res.verbs {
		switch verb {
		case "create", "update":
			rc.AddCommand(newAPIWriteCmd(e, af, res, verb))
		case "list":
			rc.AddCommand(newAPIListCmd(e, af, res))
		case "get", "delete":
			rc.AddCommand(newAPIIDCmd(e, af, res, verb))
		}
	}
	for _, action := range res.actions {
		rc.AddCommand(newAPIIDCmd(e, af, res, action))
	}
	return rc
}

// newAPIWriteCmd is `create` (POST /coll) or `update ID` (PATCH /coll/ID).
func newAPIWriteCmd(e *env, af *apiFlags, res *apiResource, verb string) *cobra.Command {
	var rawBody string
	strs := map[string]*string{}
	bools := map[string]*bool{}
	lists := map[string]*[]string{}
	var fields []apiField
	for _, f := range res.fields {
		if (verb == "create" && f.create) || (verb == "update" && f.update) {
			fields = append(fields, f)
		}
	}
	cmd := &cobra.Command{
		Args: cobra.NoArgs,
	}
	obj := singular(res.name)
	if verb == "create" {
		cmd.Use = "create [flags]"
		cmd.Short = "Create " + obj + " (POST " + res.path + ")"
		cmd.Long = cmd.Short + " and print it. Unset fields take the API's defaults."
		cmd.Example = "  tollgate api " + res.name + " create" + exampleFlags(fields)
	} else {
		cmd.Use = "update ID [flags]"
		cmd.Short = "Change fields of " + obj + " (PATCH " + res.path + "/ID)"
		cmd.Long = cmd.Short + " and print it. Only the fields given change."
		cmd.Example = "  tollgate api " + res.name + " update ID" + exampleFlags(fields)
		cmd.Args = cobra.ExactArgs(1)
	}
	fl := cmd.Flags()
	for _, f := range fields {
		switch f.kind {
		case fieldString:
			strs[f.key] = fl.String(f.flag, "", f.usage)
		case fieldBool, fieldNull:
			bools[f.key] = fl.Bool(f.flag, false, f.usage)
		case fieldList:
			lists[f.key] = fl.StringArray(f.flag, nil, f.usage)
		case fieldHSTS:
			strs[f.key] = fl.String(f.flag, "", f.usage)
		}
	}
	fl.StringVar(&rawBody, "body", "", `request body fields as a JSON object, e.g. '{"metadata":"x"}'; flags override them`)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body := map[string]any{}
		if rawBody != "" {
			dec := json.NewDecoder(strings.NewReader(rawBody))
			dec.UseNumber()
			if err := dec.Decode(&body); err != nil || body == nil {
				return fail(codes.NewError(codes.ConfigInvalid, "--body must be a JSON object: %v.", err))
			}
		}
		for _, f := range fields {
			if !cmd.Flags().Changed(f.flag) {
				continue
			}
			var v any
			switch f.kind {
			case fieldString:
				v = *strs[f.key]
			case fieldBool:
				v = *bools[f.key]
			case fieldList:
				v = expandList(*lists[f.key])
			case fieldHSTS:
				h, err := hstsField(f.flag, *strs[f.key])
				if err != nil {
					return fail(err)
				}
				v = h
			case fieldNull:
				if !*bools[f.key] {
					continue
				}
				if other := changedUnder(cmd, fields, f.key); other != "" {
					return fail(codes.NewError(codes.ConfigInvalid, "--%s and --%s cannot go together: --%s sets %s to null.", f.flag, other, f.flag, f.key))
				}
			}
			setBodyField(body, f.key, v)
		}
		c, err := af.client(e)
		if err != nil {
			return fail(err)
		}
		method, path := "POST", res.path
		if verb == "update" {
			id, err := pathSegment(args[0])
			if err != nil {
				return fail(err)
			}
			method, path = "PATCH", res.path+"/"+id
		}
		out, err := c.do(cmd.Context(), method, path, nil, body)
		if err != nil {
			return apiFail(err)
		}
		return printJSON(e, out)
	}
	return cmd
}

// setBodyField sets key in body to v; a key "object.field" sets field in
// the object body["object"], made if missing (or replacing a non-object
// given with --body).
func setBodyField(body map[string]any, key string, v any) {
	obj, field, nested := strings.Cut(key, ".")
	if !nested {
		body[key] = v
		return
	}
	m, ok := body[obj].(map[string]any)
	if !ok {
		m = map[string]any{}
		body[obj] = m
	}
	m[field] = v
}

// changedUnder returns the flag of a field inside the object key that was
// given on the command line, or "".
func changedUnder(cmd *cobra.Command, fields []apiField, key string) string {
	for _, f := range fields {
		if strings.HasPrefix(f.key, key+".") && cmd.Flags().Changed(f.flag) {
			return f.flag
		}
	}
	return ""
}

// hstsField turns a Strict-Transport-Security value given to --flag into
// the API's hsts object; "none" gives null (no HSTS).
func hstsField(flag, v string) (any, error) {
	if strings.EqualFold(strings.TrimSpace(v), "none") {
		return nil, nil
	}
	h, err := policy.ParseHSTS(v)
	if err != nil {
		return nil, codes.NewError(codes.HSTSInvalid, "--%s: %v. Use \"max-age=SECONDS[; includeSubDomains][; preload]\", or none.", flag, err)
	}
	return map[string]any{"max_age": h.MaxAge, "include_subdomains": h.IncludeSubDomains, "preload": h.Preload}, nil
}

// expandList returns the values of a repeatable flag, each also split at
// commas, so "--acl a,b" and "--acl a --acl b" mean the same. An explicit
// empty value (--acl "") yields an empty list, which clears it.
func expandList(vs []string) []string {
	out := []string{}
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// exampleFlags renders example flags for help: every field with a
// placeholder.
func exampleFlags(fields []apiField) string {
	var b strings.Builder
	for _, f := range fields {
		switch f.kind {
		case fieldBool:
			b.WriteString(" --" + f.flag + "=true")
		case fieldHSTS:
			b.WriteString(" --" + f.flag + " 'max-age=31536000; includeSubDomains'")
		case fieldNull:
			// an alternative to other flags: not in the one-line example
		default:
			b.WriteString(" --" + f.flag + " " + strings.ToUpper(strings.ReplaceAll(f.flag, "-", "_")))
		}
	}
	return b.String()
}

// newAPIIDCmd is a verb on one object: get (GET), delete (DELETE) or an
// action (POST /coll/ID/action).
func newAPIIDCmd(e *env, af *apiFlags, res *apiResource, verb string) *cobra.Command {
	obj := singular(res.name)
	method, short := "", ""
	switch verb {
	case "get":
		method, short = "GET", "Print "+obj+" (GET "+res.path+"/ID)"
	case "delete":
		method, short = "DELETE", "Delete "+obj+" (DELETE "+res.path+"/ID); prints nothing"
	default:
		method, short = "POST", "Ask the agent of "+obj+" to "+verb+" (POST "+res.path+"/ID/"+verb+")"
	}
	return &cobra.Command{
		Use:     verb + " ID",
		Short:   short,
		Example: "  tollgate api " + res.name + " " + verb + " ID",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := pathSegment(args[0])
			if err != nil {
				return fail(err)
			}
			c, err := af.client(e)
			if err != nil {
				return fail(err)
			}
			path := res.path + "/" + id
			if method == "POST" {
				path += "/" + verb
			}
			out, err := c.do(cmd.Context(), method, path, nil, nil)
			if err != nil {
				return apiFail(err)
			}
			return printJSON(e, out)
		},
	}
}

func newAPIListCmd(e *env, af *apiFlags, res *apiResource) *cobra.Command {
	var (
		limit    int
		beforeID string
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "list [--limit N] [--before-id ID] [--all]",
		Short: "List " + strings.ReplaceAll(res.name, "-", " ") + ", newest first (GET " + res.path + ")",
		Long: "List " + strings.ReplaceAll(res.name, "-", " ") + ", newest first (GET " + res.path + `).

One page is printed as the API answers it: {"` + res.listKey + `": [...], "uri": ..., "next_page_uri": ...}.
--all follows next_page_uri and prints every object under "` + res.listKey + `", with
next_page_uri null.`,
		Example: "  tollgate api " + res.name + " list --limit 10\n  tollgate api " + res.name + " list --all",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if cmd.Flags().Changed("limit") {
				if limit < 1 || limit > 100 {
					return fail(codes.NewError(codes.ConfigInvalid, "--limit must be between 1 and 100."))
				}
				q.Set("limit", strconv.Itoa(limit))
			}
			if beforeID != "" {
				q.Set("before_id", beforeID)
			}
			c, err := af.client(e)
			if err != nil {
				return fail(err)
			}
			if !all {
				out, err := c.do(cmd.Context(), "GET", res.path, q, nil)
				if err != nil {
					return apiFail(err)
				}
				return printJSON(e, out)
			}
			out, err := listAll(cmd.Context(), c, res, q)
			if err != nil {
				return err
			}
			return printJSON(e, out)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", 100, "objects per page, 1-100")
	fl.StringVar(&beforeID, "before-id", "", "start after this ID (the page before it in the newest-first order)")
	fl.BoolVar(&all, "all", false, "follow next_page_uri and print every object")
	return cmd
}

// listPage is a list answer: the items under the resource's key, and the
// paging fields.
type listPage struct {
	items []json.RawMessage
	uri   string
	next  *string
}

func decodeListPage(data json.RawMessage, key string) (*listPage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("the API's list answer is not a JSON object: %w", err)
	}
	p := &listPage{}
	raw, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("the API's list answer has no %q field", key)
	}
	if err := json.Unmarshal(raw, &p.items); err != nil {
		return nil, fmt.Errorf("the API's list answer: %q is not an array: %w", key, err)
	}
	if u, ok := m["uri"]; ok {
		_ = json.Unmarshal(u, &p.uri)
	}
	if n, ok := m["next_page_uri"]; ok {
		if err := json.Unmarshal(n, &p.next); err != nil {
			return nil, fmt.Errorf("the API's list answer: next_page_uri is not a string or null: %w", err)
		}
	}
	if p.next != nil && *p.next == "" {
		p.next = nil
	}
	return p, nil
}

// listAll follows next_page_uri from the first page and returns one list
// envelope with every item. A next_page_uri seen before is an error, not a
// loop.
func listAll(ctx context.Context, c *apiClient, res *apiResource, q url.Values) (json.RawMessage, error) {
	var (
		items []json.RawMessage
		first string
	)
	seen := map[string]bool{}
	path := res.path
	for pages := 0; ; pages++ {
		if pages == maxListPages {
			return nil, &exitErr{code: exitError, err: fmt.Errorf("gave up after %d pages of %s", maxListPages, res.path)}
		}
		data, err := c.do(ctx, "GET", path, q, nil)
		if err != nil {
			return nil, apiFail(err)
		}
		p, err := decodeListPage(data, res.listKey)
		if err != nil {
			return nil, &exitErr{code: exitError, err: err}
		}
		if pages == 0 {
			first = p.uri
		}
		items = append(items, p.items...)
		if p.next == nil {
			break
		}
		if seen[*p.next] {
			return nil, &exitErr{code: exitError, err: fmt.Errorf("the API answered next_page_uri %s twice; stopping", *p.next)}
		}
		seen[*p.next] = true
		path, q = *p.next, nil
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return json.Marshal(map[string]any{res.listKey: items, "uri": first, "next_page_uri": nil})
}

// singular names one object of a resource with its article:
// "ip-policies" → "an ip policy".
func singular(name string) string {
	s := strings.ReplaceAll(name, "-", " ")
	if strings.HasSuffix(s, "ies") {
		s = strings.TrimSuffix(s, "ies") + "y"
	} else {
		s = strings.TrimSuffix(s, "s")
	}
	if strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

// pathSegment checks that an ID can go in a URL path as one segment.
func pathSegment(id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, "/?#%") || id == "." || id == ".." {
		return "", codes.NewError(codes.ConfigInvalid, "%q is not an object ID (like bot_2cSjwFetnZnRcG0B7U5fEYBX2V3).", id)
	}
	return url.PathEscape(id), nil
}

// apiFail gives an API error exit status 1; its message carries the
// API's msg and error code.
func apiFail(err error) error { return &exitErr{code: exitError, err: err} }

// printJSON prints a JSON answer indented, or nothing for an empty one.
func printJSON(e *env, data json.RawMessage) error {
	if len(data) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return &exitErr{code: exitError, err: fmt.Errorf("the API's answer is not JSON: %w", err)}
	}
	buf.WriteByte('\n')
	_, err := e.stdout.Write(buf.Bytes())
	return err
}
