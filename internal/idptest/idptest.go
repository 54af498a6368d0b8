// Package idptest runs real identity providers in-process for tests of
// single sign-on: crewjam/saml's samlidp as a SAML 2.0 IdP and
// zitadel/oidc's example OpenID provider (v3.48.1, its storage built with
// NewStorageWithClients, not the package's global client registry). Both
// listen on loopback, on ephemeral ports, and stop with the test.
package idptest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml/logger"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/language"
)

// SAML is a running samlidp.
type SAML struct {
	URL    string // base URL: metadata at URL+"/metadata"
	Server *samlidp.Server
	http   *httptest.Server
}

// SAMLOptions are NewSAML's optional settings.
type SAMLOptions struct {
	// SHA1 signs responses with rsa-sha1 instead of rsa-sha256.
	SHA1 bool
	// Clock is the IdP's clock (a clock in the past makes expired
	// assertions). Default: the real clock.
	Clock *dsig.Clock
}

// NewSAML starts a SAML IdP with a new RSA key and self-signed
// certificate.
func NewSAML(t testing.TB, opts SAMLOptions) *SAML {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idptest SAML IdP"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	u, _ := url.Parse(base)
	srv, err := samlidp.New(samlidp.Options{URL: *u, Key: key, Certificate: cert, Store: &samlidp.MemoryStore{},
		Logger: logger.DefaultLogger, Clock: opts.Clock})
	if err != nil {
		t.Fatal(err)
	}
	if opts.SHA1 {
		srv.IDP.SignatureMethod = dsig.RSASHA1SignatureMethod
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &SAML{URL: base, Server: srv, http: hs}
}

// MetadataURL is where the IdP publishes its metadata.
func (s *SAML) MetadataURL() string { return s.URL + "/metadata" }

// put calls the IdP's admin API.
func (s *SAML) put(t testing.TB, path string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, s.URL+path, bytes.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("PUT %s at the SAML IdP: %d %s", path, res.StatusCode, b)
	}
}

// AddUser adds a user who signs in at the IdP with name and password.
func (s *SAML) AddUser(t testing.TB, name, password, email, commonName string, groups ...string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Server.Store.Put("/users/"+name, samlidp.User{Name: name, HashedPassword: hash, Email: email,
		CommonName: commonName, Groups: groups}); err != nil {
		t.Fatal(err)
	}
}

// AddServiceProvider registers a service provider by its metadata XML.
func (s *SAML) AddServiceProvider(t testing.TB, id string, metadata []byte) {
	t.Helper()
	s.put(t, "/services/"+id, metadata)
}

// AddShortcut makes /login/<name> an IdP-initiated sign-in to the service
// provider with entity ID spEntityID.
func (s *SAML) AddShortcut(t testing.TB, name, spEntityID string) {
	t.Helper()
	if err := s.Server.Store.Put("/shortcuts/"+name, samlidp.Shortcut{Name: name, ServiceProviderID: spEntityID}); err != nil {
		t.Fatal(err)
	}
}

// OIDC is a running zitadel/oidc example OpenID provider.
type OIDC struct {
	Issuer  string // "http://127.0.0.1:<port>/"
	users   *users
	clients map[string]*storage.Client
	mu      *sync.Mutex
}

// OIDCUser is a user of the OpenID provider, who signs in with Username
// and Password.
type OIDCUser struct {
	Username, Password, Email string
	EmailVerified             bool
	FirstName, LastName       string
}

// NewOIDC starts an OpenID provider.
func NewOIDC(t testing.TB) *OIDC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	us := &users{byID: map[string]*storage.User{}}
	clients := map[string]*storage.Client{}
	st := storage.NewStorageWithClients(us, clients)
	router := exampleop.SetupServer(issuer, st, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	hs := httptest.NewUnstartedServer(router)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &OIDC{Issuer: issuer, users: us, clients: clients, mu: &sync.Mutex{}}
}

// AddClient registers a confidential web client (client_secret_basic,
// PKCE allowed) with its redirect URIs. Register clients before they are
// used.
func (o *OIDC) AddClient(id, secret string, redirectURIs ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clients[id] = storage.WebClient(id, secret, redirectURIs...)
}

// AddUser adds a user.
func (o *OIDC) AddUser(u OIDCUser) {
	o.users.mu.Lock()
	defer o.users.mu.Unlock()
	id := "u" + u.Username
	o.users.byID[id] = &storage.User{ID: id, Username: u.Username, Password: u.Password, Email: u.Email,
		EmailVerified: u.EmailVerified, FirstName: u.FirstName, LastName: u.LastName, PreferredLanguage: language.English}
}

// users is the provider's storage.UserStore.
type users struct {
	mu   sync.Mutex
	byID map[string]*storage.User
}

func (u *users) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byID[id]
}

func (u *users) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, v := range u.byID {
		if v.Username == name {
			return v
		}
	}
	return nil
}

func (u *users) ExampleClientID() string { return "service" }
