package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/codes"
)

// File names of the local CA inside its directory.
const (
	CACertFile = "ca.pem"     // the root certificate, PEM, mode 0644: what users trust
	CAKeyFile  = "ca-key.pem" // its private key, PKCS#8 PEM, mode 0600
)

// CAValidityYears is the lifetime of a new local root CA.
const CAValidityYears = 10

// CA is Tollgate's local development certificate authority: one ECDSA P-256
// root that signs the edge's leaf certificates in `tollgated dev`. Users
// trust it by passing CertFile to curl --cacert or the agent's --root-ca.
// A CA is immutable and safe for concurrent use.
type CA struct {
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	certPEM  []byte
	certFile string
	id       string // hex SHA-256 prefix of the certificate, for IssuerKey
}

// LoadOrCreateCA returns the CA persisted in dir as CACertFile and CAKeyFile,
// creating dir (0700) and a new CA when neither file exists: an ECDSA P-256
// root valid for CAValidityYears, named "Tollgate Dev CA <hostname>
// <random>". A restart with the same dir returns the same CA.
//
// When the files exist but cannot be used — unreadable, not PEM, not a CA,
// key and certificate that do not belong together, only one of the two
// present, or expired — it returns a *codes.Error with code
// codes.CAUnreadable whose message names the file and what to do; the
// underlying error is its Cause. It writes files only when neither exists.
func LoadOrCreateCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	if abs, err := filepath.Abs(certPath); err == nil {
		certPath = abs
	}
	if abs, err := filepath.Abs(keyPath); err == nil {
		keyPath = abs
	}

	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	certMissing := errors.Is(certErr, fs.ErrNotExist)
	keyMissing := errors.Is(keyErr, fs.ErrNotExist)
	switch {
	case certMissing && keyMissing:
		return createCA(dir, certPath, keyPath)
	case certErr != nil && !certMissing:
		return nil, caUnreadable(certPath, keyPath, "cannot read "+CACertFile, certErr)
	case keyErr != nil && !keyMissing:
		return nil, caUnreadable(certPath, keyPath, "cannot read "+CAKeyFile, keyErr)
	case certMissing:
		return nil, caUnreadable(certPath, keyPath, CAKeyFile+" exists but "+CACertFile+" is missing", certErr)
	case keyMissing:
		return nil, caUnreadable(certPath, keyPath, CACertFile+" exists but "+CAKeyFile+" is missing", keyErr)
	}

	cert, key, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, caUnreadable(certPath, keyPath, err.Error(), err)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		err := fmt.Errorf("the CA certificate expired on %s", cert.NotAfter.UTC().Format(time.DateOnly))
		return nil, caUnreadable(certPath, keyPath, err.Error(), err)
	}
	return newCA(cert, key, certPEM, certPath), nil
}

// CertFile returns the absolute path of the CA certificate (PEM), the file
// users pass to curl --cacert or add to a trust store.
func (ca *CA) CertFile() string { return ca.certFile }

// Certificate returns the root certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns a copy of the root certificate in PEM form.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// CertPool returns a new pool holding only the root, for clients that must
// trust the dev edge (tests, the agent's --root-ca).
func (ca *CA) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Name returns the root's common name.
func (ca *CA) Name() string { return ca.cert.Subject.CommonName }

func newCA(cert *x509.Certificate, key *ecdsa.PrivateKey, certPEM []byte, certFile string) *CA {
	sum := sha256.Sum256(cert.Raw)
	return &CA{cert: cert, key: key, certPEM: certPEM, certFile: certFile, id: hex.EncodeToString(sum[:8])}
}

// caUnreadable builds the user-facing error for an unusable CA.
func caUnreadable(certPath, keyPath, what string, cause error) *codes.Error {
	return codes.NewError(codes.CAUnreadable,
		"the dev CA at %s cannot be used: %s; restore the file, or delete %s and %s to create a new CA (clients must then trust the new %s)",
		filepath.Dir(certPath), what, certPath, keyPath, CACertFile).WithCause(cause)
}

// parseCA decodes a CA certificate and its private key from PEM and checks
// that they form a usable ECDSA root: a CA certificate allowed to sign
// certificates, and the private key of its public key. The key may be PKCS#8
// ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). Validity dates are not checked.
func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New(CACertFile + " holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: parsing certificate: %w", CACertFile, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, errors.New(CACertFile + " is not a CA certificate that may sign certificates")
	}

	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New(CAKeyFile + " holds no PEM private key")
	}
	var parsed any
	switch kb.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		return nil, nil, fmt.Errorf("%s: unexpected PEM block %q", CAKeyFile, kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: parsing private key: %w", CAKeyFile, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: want an ECDSA key, got %T", CAKeyFile, parsed)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New(CAKeyFile + " is not the key of " + CACertFile)
	}
	return cert, key, nil
}

// createCA makes a new root and writes it to dir: the key first (0600), then
// the certificate (0644), each through a temporary file and a rename so a
// crash never leaves a half-written file.
func createCA(dir, certPath, keyPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating dev CA: generating key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("creating dev CA: %w", err)
	}
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("creating dev CA: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	if len(host) > 32 { // keep the CN within X.520's 64 characters
		host = host[:32]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("Tollgate Dev CA %s %s", host, hex.EncodeToString(suffix)),
			Organization: []string{"Tollgate development CA"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(CAValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating dev CA: signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("creating dev CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("creating dev CA: encoding key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating dev CA directory: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("writing dev CA key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		_ = os.Remove(keyPath) // do not leave a key without its certificate
		return nil, fmt.Errorf("writing dev CA certificate: %w", err)
	}
	return newCA(cert, key, certPEM, certPath), nil
}

// writeFileAtomic writes data to path with mode perm (umask ignored) via a
// temporary file in the same directory and a rename.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// randomSerial returns a positive 128-bit serial number (RFC 5280 §4.1.2.2
// allows up to 20 octets; CA/B asks for at least 64 bits of entropy).
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
