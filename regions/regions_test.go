package regions

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, r := range All() {
		if got, err := Parse(string(r.Code)); err != nil || got != r.Code {
			t.Fatalf("Parse(%q) = %q, %v", r.Code, got, err)
		}
	}
	_, err := Parse("mars")
	if err == nil || !strings.Contains(err.Error(), `"mars"`) || !strings.Contains(err.Error(), "us, eu, ap, au, sa, jp, in") {
		t.Fatalf("Parse(mars) = %v", err)
	}
	if _, err := Parse(""); err == nil {
		t.Fatal(`Parse("") accepted`)
	}
	if _, err := Parse(string(Default)); err != nil {
		t.Fatalf("Default %q is not a region: %v", Default, err)
	}
}

func TestCodeList(t *testing.T) {
	if got := CodeList(); got != "us, eu, ap, au, sa, jp, in" {
		t.Fatalf("CodeList() = %q", got)
	}
}
