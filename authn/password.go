package authn

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of a password hash.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes (parallelism)
}

// PasswordParams are the parameters new password hashes use: argon2id with
// 19 MiB of memory, 2 passes and 1 lane, a 16-byte random salt and a
// 32-byte tag. They are the OWASP Password Storage Cheat Sheet's first
// argon2id configuration (m=19456 KiB, t=2, p=1), which costs about as
// much as RFC 9106 §4's second recommended option (64 MiB, t=3) in time
// on a small server while using a third of its memory, so a control plane
// on a 1–2 GiB machine can verify several sign-ins at once. RFC 9106
// §3.1/§4 fix the salt (128 bits) and tag (256 bits) sizes. Stored hashes
// carry their parameters (PHC string format), so raising these later
// leaves existing hashes verifiable; NeedsRehash tells when to upgrade
// one.
var PasswordParams = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	tagLen  = 32
	// maxHashMemory bounds the memory a stored hash may ask for (KiB), so
	// a corrupted or hostile row cannot make verification allocate without
	// bound.
	maxHashMemory = 256 * 1024
	maxHashTime   = 16
)

// Password rules (NIST SP 800-63B, §5.1.1.2 "Memorized Secret Verifiers"):
// at least 8 characters, at least 64 accepted (we accept 256), every
// printable character and space allowed, no composition rules, and a
// check against a list of commonly used passwords. Characters are Unicode
// code points, as §5.1.1.2 counts them.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// Password policy errors (CheckPassword).
var (
	ErrPasswordShort  = errors.New("authn: password shorter than the minimum")
	ErrPasswordLong   = errors.New("authn: password longer than the maximum")
	ErrPasswordCommon = errors.New("authn: password is one of the most common")
	ErrPasswordEmail  = errors.New("authn: password is the e-mail address")
	ErrPasswordChars  = errors.New("authn: password holds control characters or invalid UTF-8")
	// ErrPasswordHash: a stored hash that is not an argon2id PHC string
	// with parameters within bounds.
	ErrPasswordHash = errors.New("authn: stored password hash is malformed")
)

// CheckPassword applies the password rules above to a new password for the
// user with e-mail address email: length (MinPasswordLen–MaxPasswordLen
// code points), no control characters, not the address or its local part,
// and not in the built-in list of common passwords (compared without
// case). It returns one of the ErrPassword* errors.
func CheckPassword(password, email string) error {
	if !utf8.ValidString(password) || strings.ContainsFunc(password, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return ErrPasswordChars
	}
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return ErrPasswordShort
	case n > MaxPasswordLen:
		return ErrPasswordLong
	}
	lower := strings.ToLower(password)
	if email != "" {
		e := strings.ToLower(email)
		local, _, _ := strings.Cut(e, "@")
		if lower == e || lower == local {
			return ErrPasswordEmail
		}
	}
	if commonPasswords[lower] {
		return ErrPasswordCommon
	}
	return nil
}

// HashPassword returns the argon2id hash of password with PasswordParams
// and a fresh random salt, in the PHC string format
// "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<tag>" (salt and tag
// in unpadded standard base64, as the reference implementation and the
// PHC format specify).
func HashPassword(password string) string {
	return hashWith(password, PasswordParams)
}

func hashWith(password string, p Argon2Params) string {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		panic("authn: crypto/rand failed: " + err.Error())
	}
	tag := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, tagLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(tag))
}

// PasswordMatches reports whether password matches a hash HashPassword
// made (with whatever parameters it records), comparing the tags in
// constant time. A malformed hash matches nothing and returns
// ErrPasswordHash.
func PasswordMatches(password, hash string) (bool, error) {
	p, salt, tag, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(tag)))
	return subtle.ConstantTimeCompare(got, tag) == 1, nil
}

// NeedsRehash reports whether a stored hash uses parameters other than
// PasswordParams, so the caller can store a new hash after a successful
// sign-in.
func NeedsRehash(hash string) bool {
	p, _, _, err := parsePHC(hash)
	return err != nil || p != PasswordParams
}

// parsePHC reads an argon2id PHC string.
func parsePHC(hash string) (p Argon2Params, salt, tag []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrPasswordHash
	}
	var m, t, par uint64
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &par); err != nil ||
		fmt.Sprintf("m=%d,t=%d,p=%d", m, t, par) != parts[3] || m < 8 || m > maxHashMemory || t < 1 || t > maxHashTime || par < 1 || par > 16 {
		return p, nil, nil, ErrPasswordHash
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, ErrPasswordHash
	}
	if tag, err = b64.DecodeString(parts[5]); err != nil || len(tag) < 16 || len(tag) > 64 {
		return p, nil, nil, ErrPasswordHash
	}
	return Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(par)}, salt, tag, nil
}
