package ids

import "testing"

func TestIDs(t *testing.T) {
	id := New(PrefixAPIKey)
	if p, _, err := Split(id, PrefixAPIKey); err != nil || p != "ak" {
		t.Fatal(id, err)
	}
	for _, bad := range []string{"", "ak_", "ak_short", "cr_2cSjwFetnZnRcG0B7U5fEYBX2V3", "2cSjwFetnZnRcG0B7U5fEYBX2V3"} {
		if _, _, err := Split(bad, PrefixAPIKey); err == nil {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
}
