package tunnel

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrClosed is returned by operations on a session or mux that was
	// closed locally.
	ErrClosed = errors.New("tunnel: session closed")
	// ErrHeartbeatTimeout ends a session whose peer did not echo a
	// heartbeat within interval + tolerance.
	ErrHeartbeatTimeout = errors.New("tunnel: heartbeat timeout")
	// ErrAuthTimeout ends a server session whose agent did not authenticate
	// within ServerConfig.AuthTimeout.
	ErrAuthTimeout = errors.New("tunnel: no successful auth in time")
	// ErrMessageTooLarge is returned when an RPC message or proxy header
	// exceeds its size bound.
	ErrMessageTooLarge = errors.New("tunnel: message too large")
	// ErrMalformed is returned when a frame or message cannot be decoded.
	ErrMalformed = errors.New("tunnel: malformed message")
	// ErrUnsupported is returned by ServerSession.Stop and Restart when the
	// agent said at Auth that it does not execute the command.
	ErrUnsupported = errors.New("tunnel: the agent does not support this command")
	// ErrAuthRejected ends a server session whose Auth the handler refused;
	// the refusal (a *RemoteError) is wrapped with it.
	ErrAuthRejected = errors.New("tunnel: auth refused")
	// ErrNotAuthenticated is returned by ServerSession methods that need an
	// authenticated agent, before Auth succeeded.
	ErrNotAuthenticated = errors.New("tunnel: session not authenticated")
	// ErrStopRequested ends a client session whose edge asked it to stop
	// and whose OnStop callback agreed. Reconnecting would be wrong.
	ErrStopRequested = errors.New("tunnel: the edge asked the agent to stop")
	// ErrRestartRequested ends a client session whose edge asked it to
	// restart and whose OnRestart callback agreed.
	ErrRestartRequested = errors.New("tunnel: the edge asked the agent to restart")
	// ErrGoingAway ends a session whose peer closed it on purpose with
	// Mux.GoAway (ServerSession.GoAway: an edge draining for a restart or
	// a shutdown). An agent reconnects at once, without a backoff delay.
	ErrGoingAway = errors.New("tunnel: the edge is going away (restart or shutdown)")
)

// errorCodePattern finds a user-facing error code in an RPC error string:
// ours (TG_107) or the hosted platform's (ERR_NGROK_107). The SDKs use
// ERR_NGROK_\d+ the same way (docs/agent-protocol.md#errors).
var errorCodePattern = regexp.MustCompile(`(TG|ERR_NGROK)_\d+`)

// RemoteError is an error the peer sent in an RPC response's Error field.
type RemoteError struct {
	Code    string // "TG_107", "ERR_NGROK_107", or "" when the text had none
	Message string // the text without the code
}

// ParseRemoteError splits an RPC error string into code and message. The
// first code found is the code; the message is the text with it (and a
// bracket pair around it, as codes.Error writes it) removed.
func ParseRemoteError(s string) *RemoteError {
	loc := errorCodePattern.FindStringIndex(s)
	if loc == nil {
		return &RemoteError{Message: strings.TrimSpace(s)}
	}
	code := s[loc[0]:loc[1]]
	before, after := s[:loc[0]], s[loc[1]:]
	if strings.HasSuffix(before, "[") && strings.HasPrefix(after, "]") {
		before, after = before[:len(before)-1], after[1:]
	}
	msg := strings.TrimSpace(strings.TrimSpace(before) + " " + strings.TrimSpace(after))
	return &RemoteError{Code: code, Message: msg}
}

// Error returns "message [code]", or the message alone without a code.
func (e *RemoteError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	if e.Message == "" {
		return e.Code
	}
	return e.Message + " [" + e.Code + "]"
}

// Number returns the numeric part of Code, or -1 without a code.
func (e *RemoteError) Number() int {
	i := strings.LastIndexByte(e.Code, '_')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(e.Code[i+1:])
	if err != nil {
		return -1
	}
	return n
}

// Permanent reports whether retrying cannot help: the credential is
// missing, malformed, invalid or revoked, the agent's source IP is refused,
// the agent's parameters are invalid, or a bind is refused for a reason
// that does not go away by itself. Our codes reuse the hosted platform's
// numbers, so ERR_NGROK_<n> is judged the same way as TG_<n>.
func (e *RemoteError) Permanent() bool {
	_, ok := permanentCodes[e.Number()]
	return ok
}

// Is makes errors.Is(err, ErrNotAuthenticated) true for the edge's
// "not authenticated" answer.
func (e *RemoteError) Is(target error) bool {
	return target == ErrNotAuthenticated && e.Number() == codeNumber(codes.NotAuthenticated)
}

// permanentCodes are the code numbers whose condition does not clear on
// retry. A taken endpoint (TG_334), exhausted ports (TG_405) or a stopped
// session (TG_151) are not in it: those can clear.
var permanentCodes = func() map[int]struct{} {
	m := map[int]struct{}{}
	for _, c := range []codes.Code{
		codes.AuthtokenMissing, codes.AuthtokenMalformed, codes.AuthtokenInvalid,
		codes.CredentialRevoked, codes.AuthPayload, codes.HeartbeatInterval,
		codes.HeartbeatTolerance, codes.AgentIPRestricted,
		codes.BindProto, codes.BindURL, codes.BindOutsideBase, codes.BindOption,
		codes.BindMinTLS, codes.BindACL, codes.BindReservedOther, codes.BindRegion,
		codes.BindAddrRegion, codes.BindNotReserved, codes.BindDenyOnly,
		codes.BasicAuthUser, codes.BasicAuthPassword, codes.IPPolicyIDs,
	} {
		m[codeNumber(c)] = struct{}{}
	}
	return m
}()

func codeNumber(c codes.Code) int {
	return (&RemoteError{Code: string(c)}).Number()
}

// IsPermanent reports whether err says that reconnecting or retrying will
// not help: a permanent *RemoteError, or ErrStopRequested.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrStopRequested) {
		return true
	}
	var re *RemoteError
	return errors.As(err, &re) && re.Permanent()
}

// codeError formats an error for an RPC response's Error field the way
// codes.Error does: "message [TG_nnn]".
func codeError(code codes.Code, msg string) string {
	return (&codes.Error{Code: code, Message: msg}).Error()
}
