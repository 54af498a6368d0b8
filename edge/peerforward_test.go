package edge

import (
	"testing"
	"time"
)

// TestLinkDiedWaitsForTheLink: a link that ends a moment after one of its
// streams failed counts as dead (the sibling went away), not as a sibling
// that refused the client; a link that stays up does not.
func TestLinkDiedWaitsForTheLink(t *testing.T) {
	done := make(chan struct{})
	time.AfterFunc(10*time.Millisecond, func() { close(done) })
	if !linkDied(done, linkDeathGrace) {
		t.Fatal("a link that ended 10ms after its stream failed was taken for a refusal")
	}
	if linkDied(make(chan struct{}), 20*time.Millisecond) {
		t.Fatal("a link that stayed up was taken for dead")
	}
}
