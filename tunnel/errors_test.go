package tunnel

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/codes"
)

func TestParseRemoteError(t *testing.T) {
	cases := []struct {
		in        string
		code, msg string
		permanent bool
	}{
		{"The authtoken you specified is invalid. [TG_107]", "TG_107", "The authtoken you specified is invalid.", true},
		{"authentication failed: Your authtoken is invalid.\n\nERR_NGROK_107\n", "ERR_NGROK_107", "authentication failed: Your authtoken is invalid.", true},
		{"already bound to another session [TG_334]", "TG_334", "already bound to another session", false},
		{"ERR_NGROK_4018 you need an authtoken", "ERR_NGROK_4018", "you need an authtoken", true},
		{"plain failure", "", "plain failure", false},
		{"[TG_150]", "TG_150", "", false},
		{"bind refused TG_619 by ACL", "TG_619", "bind refused by ACL", true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			e := ParseRemoteError(tc.in)
			if e.Code != tc.code || e.Message != tc.msg {
				t.Fatalf("got code %q msg %q", e.Code, e.Message)
			}
			if e.Permanent() != tc.permanent || IsPermanent(fmt.Errorf("wrapped: %w", e)) != tc.permanent {
				t.Fatalf("permanent = %v", e.Permanent())
			}
		})
	}
}

func TestRemoteErrorFormat(t *testing.T) {
	ce := codes.NewError(codes.AuthtokenInvalid, "The authtoken is invalid.")
	e := ParseRemoteError(ce.Error())
	if e.Error() != ce.Error() {
		t.Fatalf("round trip: %q vs %q", e.Error(), ce.Error())
	}
	if (&RemoteError{Message: "m"}).Error() != "m" || (&RemoteError{Code: "TG_1"}).Error() != "TG_1" {
		t.Fatal("format")
	}
	if !errors.Is(ParseRemoteError(codeError(codes.NotAuthenticated, "x")), ErrNotAuthenticated) {
		t.Fatal("TG_150 should match ErrNotAuthenticated")
	}
	if !IsPermanent(fmt.Errorf("x: %w", ErrStopRequested)) || IsPermanent(ErrHeartbeatTimeout) || IsPermanent(nil) {
		t.Fatal("IsPermanent")
	}
}
