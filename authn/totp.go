package authn

import (
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps, the
// defaults every authenticator app supports (Google Authenticator ignores
// others), and a 160-bit secret (RFC 4226 §4 recommends 160 bits).
const (
	TOTPPeriod     = 30 * time.Second
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20 // bytes
)

// TOTP check errors (CheckTOTP).
var (
	// ErrTOTPCode: a TOTP code that is not six digits.
	ErrTOTPCode = errors.New("authn: a TOTP code is six digits")
	// ErrTOTPReplayed: the code of a time step whose code was accepted
	// already.
	ErrTOTPReplayed = errors.New("authn: TOTP code used already")
)

// NewTOTP returns a fresh TOTP secret (base32, as authenticator apps take
// it) and its otpauth:// URI (the key URI format of Google Authenticator,
// which apps read from a QR code) labelled issuer:accountName.
func NewTOTP(issuer, accountName string) (secret, uri string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: accountName,
		Period: uint(TOTPPeriod / time.Second), SecretSize: totpSecretSize, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", "", err
	}
	return k.Secret(), k.URL(), nil
}

// TOTPStep returns the RFC 6238 time step of t: whole periods since the
// Unix epoch.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(TOTPPeriod/time.Second) }

// CheckTOTP checks a code against secret at now. It accepts the codes of
// the current step and of the one before (RFC 6238 §5.2 recommends at
// most one step of allowance for transmission delay), and only of steps
// after lastStep, so a code is used at most once (§5.2: "the verifier MUST
// NOT accept the second attempt of the OTP after the successful
// validation has been issued for the first OTP"). It returns the step
// that matched, to store as the new lastStep, and whether one did; the
// codes are compared in constant time. A code that is not six digits
// returns ErrTOTPCode; the right code of a step at or before lastStep
// returns ErrTOTPReplayed.
func CheckTOTP(secret, code string, now time.Time, lastStep int64) (int64, bool, error) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		return 0, false, ErrTOTPCode
	}
	cur := TOTPStep(now)
	var matched int64
	ok, replayed := false, false
	for step := cur - 1; step <= cur; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*int64(TOTPPeriod/time.Second), 0), totp.ValidateOpts{
			Period: uint(TOTPPeriod / time.Second), Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if step > lastStep {
				matched, ok = step, true
			} else {
				replayed = true
			}
		}
	}
	if !ok && replayed {
		return 0, false, ErrTOTPReplayed
	}
	return matched, ok, nil
}
