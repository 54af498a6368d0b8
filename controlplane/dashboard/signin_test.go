package dashboard

import "testing"

// TestSafeNext: the post-sign-in redirect stays on the dashboard.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/credentials": "/credentials", "//evil.example/": "/",
		"https://evil.example/": "/", "/\\evil": "/", "/x\r\nSet-Cookie: a=b": "/", "credentials": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
