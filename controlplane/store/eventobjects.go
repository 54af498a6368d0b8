package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// The object of an event (docs/events.md#event-format): for a created or
// updated object, its fields as stored after the change, read in the same
// unit of work, named as the API names them (snake_case) with uri the
// object's API path; for a deleted one, its id and uri. Secrets are never
// among them: the store keeps only hashes, outside these models, and an
// event destination's target loses its secret fields (redactTarget).

// eventKind says how to read the object of one kind of event.
type eventKind struct {
	coll string // API collection path
	load func(ctx context.Context, t *tx, accountID, id string) (any, error)
}

func loadWith[T any](columns, what string, scan func(scanner) (T, error)) func(context.Context, *tx, string, string) (any, error) {
	return func(ctx context.Context, t *tx, accountID, id string) (any, error) {
		return getByID(ctx, t.sql, columns, what, id, accountID, scan)
	}
}

// eventKinds maps the object part of an event type to its reader.
var eventKinds = map[string]eventKind{
	"api_key":         {"/api_keys", loadWith(apiKeyColumns, "API key", scanAPIKey)},
	"credential":      {"/credentials", loadWith(authtokenColumns, "credential", scanAuthtoken)},
	"ssh_credential":  {"/ssh_credentials", loadWith(sshCredentialColumns, "SSH credential", scanSSHCredential)},
	"ip_policy":       {"/ip_policies", loadWith(ipPolicyColumns, "IP policy", scanIPPolicy)},
	"ip_policy_rule":  {"/ip_policy_rules", loadWith(ipPolicyRuleColumns, "IP policy rule", scanIPPolicyRule)},
	"reserved_domain": {"/reserved_domains", loadWith(reservedDomainColumns, "reserved domain", scanReservedDomain)},
	"reserved_addr":   {"/reserved_addrs", loadWith(reservedAddrColumns, "reserved address", scanReservedAddr)},
	"bot_user": {"/bot_users", func(ctx context.Context, t *tx, accountID, id string) (any, error) {
		return getBotUser(ctx, t.sql, accountID, id)
	}},
	"ip_restriction": {"/ip_restrictions", func(ctx context.Context, t *tx, accountID, id string) (any, error) {
		return getIPRestriction(ctx, t.sql, accountID, id)
	}},
	"event_subscription": {"/event_subscriptions", func(ctx context.Context, t *tx, accountID, id string) (any, error) {
		return getEventSubscription(ctx, t.sql, accountID, id)
	}},
	"event_source": {"/event_subscriptions", func(ctx context.Context, t *tx, accountID, id string) (any, error) {
		return getEventSubscription(ctx, t.sql, accountID, id)
	}},
	"event_destination": {"/event_destinations", func(ctx context.Context, t *tx, accountID, id string) (any, error) {
		d, err := getByID(ctx, t.sql, eventDestinationColumns, "event destination", id, accountID, scanEventDestination)
		if err != nil {
			return nil, err
		}
		d.Target = RedactTarget(d.Target)
		return d, nil
	}},
	"tunnel_session": {coll: "/tunnel_sessions"},
	"user":           {coll: "/users"},
	"invitation":     {coll: "/invitations"},
}

// eventObject returns the object of an audit event (see above).
func (t *tx) eventObject(ctx context.Context, ev auditEvent) (map[string]any, error) {
	name, _, _ := strings.Cut(ev.typ, ".")
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		return map[string]any{"id": ev.objectID}, nil
	}
	kindName, verb := name[:i], name[i+1:]
	k, ok := eventKinds[kindName]
	if !ok {
		return map[string]any{"id": ev.objectID}, nil
	}
	uri := k.coll + "/" + ev.objectID
	if k.load == nil || verb == "deleted" {
		return map[string]any{"id": ev.objectID, "uri": uri}, nil
	}
	v, err := k.load(ctx, t, ev.accountID, ev.objectID)
	if errors.Is(err, ErrNotFound) {
		// Created and gone in one unit of work (a cascade): the ID is all.
		return map[string]any{"id": ev.objectID, "uri": uri}, nil
	}
	if err != nil {
		return nil, err
	}
	m, _ := snakeValue(reflect.ValueOf(v)).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	delete(m, "account_id")
	m["uri"] = uri
	return m, nil
}

// snakeValue renders v for an event: structs as maps with snake_case keys,
// times as RFC 3339, JSON as itself.
func snakeValue(v reflect.Value) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case json.RawMessage:
		var out any
		if json.Unmarshal(x, &out) != nil {
			return nil
		}
		return out
	}
	switch v.Kind() {
	case reflect.Struct:
		m := make(map[string]any, v.NumField())
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.IsExported() {
				m[snakeCase(f.Name)] = snakeValue(v.Field(i))
			}
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return []any{}
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = snakeValue(v.Index(i))
		}
		return out
	}
	return v.Interface()
}

// snakeCase turns a Go field name into the API's name: IPPolicyIDs →
// ip_policy_ids, MinTLSVersion → min_tls_version, CIDR → cidr.
func snakeCase(s string) string {
	s = strings.ReplaceAll(s, "IDs", "Ids")
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) {
			// A word starts at an upper-case letter after a lower-case one,
			// or before a lower-case one in an upper-case run.
			if i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// secretTargetKeys are the fields of an event destination's target that
// hold secrets, at any depth.
var secretTargetKeys = map[string]bool{"secrets": true, "secret": true, "aws_secret_access_key": true,
	"api_key": true, "client_secret": true, "password": true, "token": true}

// RedactTarget returns target (an event destination's target JSON) without
// its secret fields, at any depth. Malformed JSON yields {}.
func RedactTarget(target json.RawMessage) json.RawMessage {
	var v any
	if json.Unmarshal(target, &v) != nil {
		return json.RawMessage(`{}`)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if secretTargetKeys[k] {
					delete(x, k)
					continue
				}
				x[k] = walk(e)
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	b, _ := json.Marshal(walk(v))
	return b
}
