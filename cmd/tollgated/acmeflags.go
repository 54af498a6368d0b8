package main

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/edge/certs"
)

// Environment variables that carry DNS-01 secrets (never flags: flags show
// in process listings).
const (
	envCloudflareToken = "TOLLGATE_CLOUDFLARE_API_TOKEN"
	envTSIGSecret      = "TOLLGATE_RFC2136_TSIG_SECRET"
)

// acmeOptions are the ACME flags shared by every command that runs an edge.
type acmeOptions struct {
	ca, caRoot, email, profile string
	httpPort, tlsPort          int
	dns, dnsServer             string
	tsigKeyName, tsigAlg       string
	dnsResolvers               []string
}

// addACMEFlags registers the ACME flags. defaultCA is the directory used
// when --acme-ca is not given ("" = none: the command's own issuer).
func addACMEFlags(f *pflag.FlagSet, o *acmeOptions, defaultCA string) {
	f.StringVar(&o.ca, "acme-ca", defaultCA, `ACME directory URL for public certificates ("letsencrypt" = Let's Encrypt production, "letsencrypt-staging"; "" = the local CA)`)
	f.StringVar(&o.caRoot, "acme-ca-root", "", "PEM file of root certificates that verify the ACME server's HTTPS (a private CA)")
	f.StringVar(&o.email, "acme-email", "", "contact email of the ACME account")
	f.StringVar(&o.profile, "acme-profile", "", `ACME certificate profile, e.g. "shortlived" ("" = the CA's default)`)
	f.IntVar(&o.httpPort, "acme-http-port", 80, "port the CA connects to for HTTP-01 (where the public HTTP listener is reachable)")
	f.IntVar(&o.tlsPort, "acme-tls-port", 443, "port the CA connects to for TLS-ALPN-01 (where the public HTTPS listener is reachable)")
	f.StringVar(&o.dns, "acme-dns", "", `DNS provider for the DNS-01 wildcard *.<base-domain>: "cloudflare" (token in $`+envCloudflareToken+`) or "rfc2136" (TSIG secret in $`+envTSIGSecret+`); "" = no wildcard, a certificate per name`)
	f.StringVar(&o.dnsServer, "acme-dns-server", "", "rfc2136: DNS server that accepts dynamic updates, host[:port]")
	f.StringVar(&o.tsigKeyName, "acme-dns-tsig-key", "", "rfc2136: TSIG key name")
	f.StringVar(&o.tsigAlg, "acme-dns-tsig-alg", "hmac-sha256", "rfc2136: TSIG algorithm")
	f.StringSliceVar(&o.dnsResolvers, "acme-dns-resolvers", nil, "DNS servers (host:port) used to find zones and check DNS-01 propagation (default: the system's)")
}

// acmeConfig turns the flags into a certs.ACMEConfig; nil when --acme-ca is
// empty. Errors are TG config errors that name the flag.
func (o acmeOptions) acmeConfig() (*certs.ACMEConfig, error) {
	ca := strings.TrimSpace(o.ca)
	switch ca {
	case "":
		return nil, nil
	case "letsencrypt":
		ca = certs.LetsEncryptProduction
	case "letsencrypt-staging":
		ca = "https://acme-staging-v02.api.letsencrypt.org/directory"
	}
	c := &certs.ACMEConfig{
		CA: ca, Email: o.email, Profile: o.profile,
		HTTPPort: o.httpPort, TLSALPNPort: o.tlsPort,
	}
	if o.caRoot != "" {
		pool, err := readCertPool("--acme-ca-root", o.caRoot)
		if err != nil {
			return nil, err
		}
		c.TrustedRoots = pool
	}
	if o.dns != "" {
		prov, err := certs.NewDNSProvider(certs.DNSProviderConfig{
			Name:          o.dns,
			APIToken:      os.Getenv(envCloudflareToken),
			Server:        o.dnsServer,
			TSIGKeyName:   o.tsigKeyName,
			TSIGAlgorithm: o.tsigAlg,
			TSIGSecret:    os.Getenv(envTSIGSecret),
		})
		if err != nil {
			return nil, codes.NewError(codes.ConfigInvalid, "--acme-dns: %v", err)
		}
		c.DNS = &certs.DNSConfig{Provider: prov, Resolvers: o.dnsResolvers}
	}
	return c, nil
}

// readCertPool reads a PEM file of root certificates that flag names.
// Errors are TG_9003 (codes.CAUnreadable) and name the flag and the file.
func readCertPool(flag, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, codes.NewError(codes.CAUnreadable, "%s: cannot read the CA file: %v. Give a readable PEM file of root certificates.", flag, err).WithCause(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, codes.NewError(codes.CAUnreadable, "%s %s holds no PEM certificate: give a PEM file of root certificates (-----BEGIN CERTIFICATE-----).", flag, path)
	}
	return pool, nil
}

// loadCA loads the local CA in dir, creating it there if missing
// (certs.LoadOrCreateCA). flag names the flag that chose dir. A CA that
// cannot be read is TG_9003 (codes.CAUnreadable); one that cannot be
// created is TG_9002 (codes.ConfigInvalid), naming the flag.
func loadCA(flag, dir string) (*certs.CA, error) {
	ca, err := certs.LoadOrCreateCA(dir)
	if err == nil {
		return ca, nil
	}
	var ce *codes.Error
	if errors.As(err, &ce) {
		return nil, codes.NewError(ce.Code, "%s %s: %s", flag, dir, ce.Message).WithCause(err)
	}
	return nil, codes.NewError(codes.ConfigInvalid, "%s %s: cannot create the local CA there: %v. Give a directory tollgated may write to.", flag, dir, err).WithCause(err)
}

// storeCertStatus records an in-process edge's certificate status reports
// in the store, where the reserved_domains API reads them.
type storeCertStatus struct {
	st     *store.Store
	region string
}

// ReportCertificateStatus implements certs.StatusReporter.
func (s storeCertStatus) ReportCertificateStatus(ctx context.Context, st certs.Status) error {
	return s.st.PutCertificateStatus(ctx, store.CertificateStatus{
		Domain: st.Domain, NotAfter: st.NotAfter, RenewsAt: st.RenewsAt, Issuer: st.Issuer,
		JobErrorCode: st.JobErrorCode, JobMsg: st.JobMsg,
		JobStartedAt: st.JobStartedAt, JobRetriesAt: st.JobRetriesAt,
		Region: s.region,
	})
}
