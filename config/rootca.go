package config

import (
	"crypto/x509"
	"os"

	"github.com/tollgate/tollgate/codes"
)

// LoadRootCAs reads a PEM file of CA certificates (root_ca, --root-ca,
// TOLLGATE_ROOT_CA). Errors are a *codes.Error TG_9003 naming the file.
func LoadRootCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, codes.NewError(codes.CAUnreadable, "Cannot read the root CA file %s: %v.", path, unwrapPathError(err)).WithCause(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, codes.NewError(codes.CAUnreadable, "The root CA file %s holds no PEM certificate.", path)
	}
	return pool, nil
}
