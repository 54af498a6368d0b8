package events

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"github.com/tollgate/tollgate/codes"
)

// Limits on a source's filter and fields.
const (
	MaxFilterBytes = 2048
	MaxFields      = 50
	// filterCostLimit bounds one evaluation of a filter (CEL's cost units),
	// so that no filter can spin on an event.
	filterCostLimit = 100_000
)

// schema is the shape of one kind of event: its top-level fields, which
// filters see as variables and field paths start with, and their CEL
// declarations.
type schema struct {
	fields []string
	env    *cel.Env
	// ints and doubles are the numeric fields (JSON numbers decode as
	// float64); maps are the object fields; a missing field is 0, {} or "".
	ints, doubles, maps map[string]bool
}

// auditSchema: the fields of an audit event (docs/events.md#event-format).
var auditSchema = newSchema([]fieldDecl{
	{"event_id", cel.StringType}, {"event_type", cel.StringType}, {"event_timestamp", cel.StringType},
	{"account_id", cel.StringType}, {"principal", cel.MapType(cel.StringType, cel.DynType)},
	{"object", cel.MapType(cel.StringType, cel.DynType)}, {"details", cel.DynType},
})

// trafficSchema: the fields of a traffic event, the envelope and the
// fields of a traffic.Record (docs/events.md#traffic-events).
var trafficSchema = newSchema([]fieldDecl{
	{"event_id", cel.StringType}, {"event_type", cel.StringType}, {"event_timestamp", cel.StringType},
	{"account_id", cel.StringType}, {"timestamp", cel.StringType}, {"duration_seconds", cel.DoubleType},
	{"region", cel.StringType}, {"edge_id", cel.StringType}, {"endpoint_id", cel.StringType},
	{"agent_session_id", cel.StringType}, {"endpoint_kind", cel.StringType}, {"client_ip", cel.StringType},
	{"tls_version", cel.StringType}, {"host", cel.StringType}, {"method", cel.StringType},
	{"path", cel.StringType}, {"proto", cel.StringType}, {"status", cel.IntType},
	{"error_code", cel.StringType}, {"ip_policy_decision", cel.StringType},
	{"bytes_in", cel.IntType}, {"bytes_out", cel.IntType},
})

type fieldDecl struct {
	name string
	typ  *cel.Type
}

func newSchema(decls []fieldDecl) *schema {
	sc := &schema{ints: map[string]bool{}, doubles: map[string]bool{}, maps: map[string]bool{}}
	var opts []cel.EnvOption
	for _, d := range decls {
		sc.fields = append(sc.fields, d.name)
		opts = append(opts, cel.Variable(d.name, d.typ))
		switch {
		case d.typ.IsExactType(cel.IntType):
			sc.ints[d.name] = true
		case d.typ.IsExactType(cel.DoubleType):
			sc.doubles[d.name] = true
		case d.typ.IsExactType(cel.StringType):
		default:
			sc.maps[d.name] = true
		}
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic("events: CEL environment: " + err.Error()) // static declarations
	}
	sc.env = env
	return sc
}

// schemaOf returns the schema of events of type typ.
func schemaOf(typ string) *schema {
	if IsTrafficType(typ) {
		return trafficSchema
	}
	return auditSchema
}

// envelopeFields are sent whatever a source's fields select.
var envelopeFields = []string{"event_id", "event_type", "event_timestamp", "account_id"}

// Filter is a compiled CEL filter of a source. Its zero value (nil) passes
// every event.
type Filter struct {
	prg cel.Program
	sc  *schema
}

// CompileFilter is CompileFilterFor an audit event type.
func CompileFilter(src string) (*Filter, error) { return compileFilter(auditSchema, src) }

// CompileFilterFor type-checks and compiles the filter of a source of
// event type typ: a CEL expression over the event's fields (for audit
// events event_type, object, principal, …; for traffic events status,
// path, host, bytes_in, …) that yields a bool. "" is no filter (nil).
// Errors are *codes.Error (codes.EventFilterInvalid) carrying the
// compiler's message.
func CompileFilterFor(typ, src string) (*Filter, error) { return compileFilter(schemaOf(typ), src) }

func compileFilter(sc *schema, src string) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	if len(src) > MaxFilterBytes {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter is %d bytes; at most %d are allowed.", len(src), MaxFilterBytes)
	}
	ast, iss := sc.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter is not valid CEL over an event's fields (%s): %s",
			strings.Join(sc.fields, ", "), iss.Err().Error())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter must yield true or false; it yields %s.", t.String())
	}
	prg, err := sc.env.Program(ast, cel.CostLimit(filterCostLimit))
	if err != nil {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter cannot be compiled: %v", err)
	}
	return &Filter{prg: prg, sc: sc}, nil
}

// Match reports whether the event (its JSON decoded into a map) passes the
// filter. An evaluation error (a missing field, a cost over the limit) or
// a result that is not true does not pass.
func (f *Filter) Match(ev map[string]any) bool {
	if f == nil {
		return true
	}
	sc := f.sc
	act := make(map[string]any, len(sc.fields))
	for _, k := range sc.fields {
		v, ok := ev[k]
		switch {
		case sc.ints[k]:
			n, _ := v.(float64)
			act[k] = int64(n)
		case sc.doubles[k]:
			n, _ := v.(float64)
			act[k] = n
		case ok && v != nil:
			act[k] = v
		case sc.maps[k]:
			act[k] = map[string]any{}
		default:
			act[k] = ""
		}
	}
	out, _, err := f.prg.Eval(act)
	if err != nil {
		return false
	}
	b, ok := out.Value().(bool)
	return ok && b
}

var fieldPath = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)

// CheckFields is CheckFieldsFor an audit event type.
func CheckFields(fields []string) error { return checkFields(auditSchema, fields) }

// CheckFieldsFor checks the fields of a source of event type typ: at most
// MaxFields dotted paths (object.id, principal.id, details; status, path)
// that start at a field of such an event. Errors are *codes.Error
// (codes.EventFieldsInvalid).
func CheckFieldsFor(typ string, fields []string) error { return checkFields(schemaOf(typ), fields) }

func checkFields(sc *schema, fields []string) error {
	if len(fields) > MaxFields {
		return codes.NewError(codes.EventFieldsInvalid, "A source may select at most %d fields; it selects %d.", MaxFields, len(fields))
	}
	for _, f := range fields {
		top, _, _ := strings.Cut(f, ".")
		ok := len(f) <= 200 && fieldPath.MatchString(f)
		if ok {
			ok = slices.Contains(sc.fields, top)
		}
		if !ok {
			if len(f) > 80 {
				f = f[:80] + "…"
			}
			return codes.NewError(codes.EventFieldsInvalid, "Field %q is not a path of this event type: start with one of %s, then .name segments.",
				f, strings.Join(sc.fields, ", "))
		}
	}
	return nil
}

// selectFields returns ev with only the envelope and the given paths; nil
// fields selects everything.
func selectFields(ev map[string]any, fields []string) map[string]any {
	if fields == nil {
		return ev
	}
	out := make(map[string]any, len(envelopeFields)+len(fields))
	for _, k := range envelopeFields {
		out[k] = ev[k]
	}
	for _, f := range fields {
		parts := strings.Split(f, ".")
		var v any = ev
		found := true
		for _, p := range parts {
			m, ok := v.(map[string]any)
			if !ok {
				found = false
				break
			}
			if v, ok = m[p]; !ok {
				found = false
				break
			}
		}
		if !found {
			continue
		}
		dst := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := dst[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				dst[p] = next
			}
			dst = next
		}
		dst[parts[len(parts)-1]] = v
	}
	return out
}

// filterCache compiles each distinct filter once per Deliverer.
type filterCache struct {
	mu sync.Mutex
	m  map[string]*Filter
}

// get returns the compiled filter; one stored before this version's checks
// that no longer compiles passes nothing, and is reported.
func (c *filterCache) get(typ, src string) (*Filter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := typ + "\x00" + src
	if f, ok := c.m[key]; ok {
		return f, nil
	}
	f, err := CompileFilterFor(typ, src)
	if err != nil {
		return nil, fmt.Errorf("stored filter %q: %w", src, err)
	}
	if c.m == nil || len(c.m) > 10_000 {
		c.m = map[string]*Filter{}
	}
	c.m[key] = f
	return f, nil
}

// decodeEvent decodes an outbox payload for filtering and selection.
func decodeEvent(payload []byte) (map[string]any, error) {
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decoding event: %w", err)
	}
	return ev, nil
}
