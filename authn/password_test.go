package authn

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	h := HashPassword("correct horse battery staple")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the argon2id parameters", h)
	}
	if h == HashPassword("correct horse battery staple") {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse battery staple": true, "correct horse battery stapl": false, "": false} {
		if ok, err := PasswordMatches(pw, h); err != nil || ok != want {
			t.Fatalf("PasswordMatches(%q) = %v, %v", pw, ok, err)
		}
	}
	if NeedsRehash(h) {
		t.Fatal("a current hash needs a rehash")
	}
	// A hash of other (cheaper) parameters still verifies, and asks for a
	// rehash.
	old := hashWith("pw", Argon2Params{Memory: 64, Time: 1, Threads: 1})
	if ok, err := PasswordMatches("pw", old); !ok || err != nil || !NeedsRehash(old) {
		t.Fatalf("old parameters: %v %v %v", ok, err, NeedsRehash(old))
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43), "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA"} {
		if ok, err := PasswordMatches("pw", bad); ok || !errors.Is(err, ErrPasswordHash) {
			t.Fatalf("malformed %q: %v %v", bad, ok, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for pw, want := range map[string]error{
		"correct horse battery staple": nil,
		"seven77":                      ErrPasswordShort,
		"pässwörd-ünïcode":             nil,
		"Password123":                  ErrPasswordCommon,
		"QWERTYUIOP":                   ErrPasswordCommon,
		"pat@example.com":              ErrPasswordEmail,
		"PAT":                          ErrPasswordShort,
		"patpatpat":                    nil,
		"tab\there-is-bad":             ErrPasswordChars,
		strings.Repeat("x", 257):       ErrPasswordLong,
	} {
		if err := CheckPassword(pw, "pat@example.com"); !errors.Is(err, want) {
			t.Errorf("CheckPassword(%q) = %v, want %v", pw, err, want)
		}
	}
	if err := CheckPassword("patrickpat", "patrickpat@example.com"); !errors.Is(err, ErrPasswordEmail) {
		t.Errorf("the address's local part: %v", err)
	}
}

// TestCheckTOTP uses RFC 6238 Appendix B's SHA-1 secret and times, whose
// 8-digit codes end in the 6-digit codes below.
func TestCheckTOTP(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // base32 of "12345678901234567890"
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		now := time.Unix(v.unix, 0)
		step, ok, err := CheckTOTP(secret, v.code, now, 0)
		if err != nil || !ok || step != TOTPStep(now) {
			t.Fatalf("T=%d code %s: step %d ok %v err %v", v.unix, v.code, step, ok, err)
		}
		// The next step still accepts it (one step of allowance), the one
		// after does not.
		if _, ok, _ := CheckTOTP(secret, v.code, now.Add(TOTPPeriod), 0); !ok {
			t.Fatalf("T=%d: not accepted one step later", v.unix)
		}
		if _, ok, _ := CheckTOTP(secret, v.code, now.Add(2*TOTPPeriod), 0); ok {
			t.Fatalf("T=%d: accepted two steps later", v.unix)
		}
		if _, ok, err := CheckTOTP(secret, v.code, now, step); ok || !errors.Is(err, ErrTOTPReplayed) {
			t.Fatalf("T=%d: a replay: %v %v", v.unix, ok, err)
		}
	}
	if _, _, err := CheckTOTP(secret, "12345", time.Unix(59, 0), 0); !errors.Is(err, ErrTOTPCode) {
		t.Fatalf("five digits: %v", err)
	}
	s, uri, err := NewTOTP("Tollgate", "pat@example.com")
	if err != nil || len(s) != 32 || !strings.HasPrefix(uri, "otpauth://totp/Tollgate:pat@example.com?") {
		t.Fatalf("NewTOTP = %q %q %v", s, uri, err)
	}
}

// FuzzPasswordMatches: any stored string is refused or verified without a
// panic or an unbounded allocation.
func FuzzPasswordMatches(f *testing.F) {
	f.Add(hashWith("pw", Argon2Params{Memory: 8, Time: 1, Threads: 1}))
	f.Add("$argon2id$v=19$m=8,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, h string) {
		p, _, _, err := parsePHC(h)
		if err == nil && (p.Memory > maxHashMemory || p.Time > maxHashTime) {
			t.Fatalf("parsed out-of-bound parameters %+v", p)
		}
	})
}
