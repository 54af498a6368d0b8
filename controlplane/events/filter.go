package events

import (
	"encoding/json"
	"fmt"
	"regexp"
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

// Top-level fields of an event (docs/events.md#event-format). Filters see
// them as variables; field paths start with one of them.
var eventFields = []string{"event_id", "event_type", "event_timestamp", "account_id", "principal", "object", "details"}

// envelopeFields are sent whatever a source's fields select.
var envelopeFields = []string{"event_id", "event_type", "event_timestamp", "account_id"}

var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("event_id", cel.StringType),
		cel.Variable("event_type", cel.StringType),
		cel.Variable("event_timestamp", cel.StringType),
		cel.Variable("account_id", cel.StringType),
		cel.Variable("principal", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("object", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("details", cel.DynType),
	)
	if err != nil {
		panic("events: CEL environment: " + err.Error()) // static declarations
	}
	return env
}()

// Filter is a compiled CEL filter of a source. Its zero value (nil) passes
// every event.
type Filter struct {
	prg cel.Program
}

// CompileFilter type-checks and compiles a source's filter: a CEL
// expression over the event's fields (event_type, object, principal, …)
// that yields a bool. "" is no filter (nil). Errors are *codes.Error
// (codes.EventFilterInvalid) carrying the compiler's message.
func CompileFilter(src string) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	if len(src) > MaxFilterBytes {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter is %d bytes; at most %d are allowed.", len(src), MaxFilterBytes)
	}
	ast, iss := celEnv.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter is not valid CEL over an event's fields (%s): %s",
			strings.Join(eventFields, ", "), iss.Err().Error())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter must yield true or false; it yields %s.", t.String())
	}
	prg, err := celEnv.Program(ast, cel.CostLimit(filterCostLimit))
	if err != nil {
		return nil, codes.NewError(codes.EventFilterInvalid, "The filter cannot be compiled: %v", err)
	}
	return &Filter{prg: prg}, nil
}

// Match reports whether the event (its JSON decoded into a map) passes the
// filter. An evaluation error (a missing field, a cost over the limit) or
// a result that is not true does not pass.
func (f *Filter) Match(ev map[string]any) bool {
	if f == nil {
		return true
	}
	act := make(map[string]any, len(eventFields))
	for _, k := range eventFields {
		if v, ok := ev[k]; ok && v != nil {
			act[k] = v
		} else if k == "principal" || k == "object" {
			act[k] = map[string]any{}
		} else if k == "details" {
			act[k] = map[string]any{}
		} else {
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

// CheckFields checks a source's fields: at most MaxFields dotted paths
// (object.id, principal.id, details) that start at a field of an event.
// Errors are *codes.Error (codes.EventFieldsInvalid).
func CheckFields(fields []string) error {
	if len(fields) > MaxFields {
		return codes.NewError(codes.EventFieldsInvalid, "A source may select at most %d fields; it selects %d.", MaxFields, len(fields))
	}
	for _, f := range fields {
		top, _, _ := strings.Cut(f, ".")
		ok := len(f) <= 200 && fieldPath.MatchString(f)
		if ok {
			ok = false
			for _, k := range eventFields {
				ok = ok || k == top
			}
		}
		if !ok {
			if len(f) > 80 {
				f = f[:80] + "…"
			}
			return codes.NewError(codes.EventFieldsInvalid, "Field %q is not a path of an event: start with one of %s, then .name segments (object.id).",
				f, strings.Join(eventFields, ", "))
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
func (c *filterCache) get(src string) (*Filter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.m[src]; ok {
		return f, nil
	}
	f, err := CompileFilter(src)
	if err != nil {
		return nil, fmt.Errorf("stored filter %q: %w", src, err)
	}
	if c.m == nil || len(c.m) > 10_000 {
		c.m = map[string]*Filter{}
	}
	c.m[src] = f
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
