package test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshKey is a client key pair written for the OpenSSH client.
type sshKey struct {
	file       string // private key, OpenSSH format, mode 0600
	authorized string // authorized_keys line
}

func newSSHKey(t *testing.T) sshKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "tollgate test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{file: file, authorized: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))}
}

// sshAddr returns the dev server's SSH ingress address from
// dev-ingress.json.
func (d *devServer) sshAddr(t *testing.T) (host, port string) {
	t.Helper()
	in := d.ingress(t)
	if in.SSHAddr == "" {
		t.Fatalf("dev-ingress.json has no ssh_addr: %+v", in)
	}
	host, port, err := net.SplitHostPort(in.SSHAddr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// addSSHCredential registers key with acl through the REST API and returns
// its ID.
func (d *devServer) addSSHCredential(t *testing.T, key sshKey, acl []string) string {
	t.Helper()
	body := map[string]any{"public_key": key.authorized, "description": "e2e"}
	if acl != nil {
		body["acl"] = acl
	}
	status, resp := restJSON(t, d.info.APIURL, d.info.APIKey, http.MethodPost, "/ssh_credentials", body)
	if status != http.StatusCreated {
		t.Fatalf("POST /ssh_credentials: %d %v", status, resp)
	}
	id, _ := resp["id"].(string)
	if !strings.HasPrefix(id, "sshcr_") {
		t.Fatalf("ssh credential id %q", id)
	}
	return id
}

// runSSH starts the OpenSSH client against the dev server's SSH ingress.
func (d *devServer) runSSH(t *testing.T, key sshKey, forward string, command ...string) *proc {
	t.Helper()
	host, port := d.sshAddr(t)
	return runSSHAt(t, net.JoinHostPort(host, port), key, forward, command...)
}

// runSSHAt starts the OpenSSH client against the SSH ingress at addr
// (host:port), as user tunnel with key, with -R forward unless it is "".
func runSSHAt(t *testing.T, addr string, key sshKey, forward string, command ...string) *proc {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SSH address %q: %v", addr, err)
	}
	args := []string{"-p", port, "-i", key.file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10"}
	if forward != "" {
		args = append(args, "-R", forward)
	}
	args = append(args, "tunnel@"+host)
	args = append(args, command...)
	return start(t, "/usr/bin/ssh", nil, args...)
}

// sshForwarding runs ssh until it prints its Forwarding line, retrying
// while the new credential has not reached the edge yet; it returns the
// process and the URL.
func (d *devServer) sshForwarding(t *testing.T, key sshKey, forward string, command ...string) (*proc, string) {
	t.Helper()
	host, port := d.sshAddr(t)
	return sshForwardingAt(t, net.JoinHostPort(host, port), key, forward, command...)
}

// sshForwardingAt is sshForwarding against the SSH ingress at addr.
func sshForwardingAt(t *testing.T, addr string, key sshKey, forward string, command ...string) (*proc, string) {
	t.Helper()
	re := regexp.MustCompile(`Forwarding\s+(\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := runSSHAt(t, addr, key, forward, command...)
		for {
			if m := re.FindStringSubmatch(p.output()); m != nil {
				return p, m[1]
			}
			if code, exited := p.wait(50 * time.Millisecond); exited {
				if !strings.Contains(p.output(), "Permission denied") || time.Now().After(deadline) {
					t.Fatalf("ssh exited %d without a Forwarding line:\n%s", code, p.output())
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no Forwarding line from ssh:\n%s", p.output())
			}
		}
	}
}

func requireSSH(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/ssh"); err != nil {
		t.Fatal("these tests need the OpenSSH client at /usr/bin/ssh: apt-get install openssh-client (.ci/run does)")
	}
}

// TestSSHReverseTunnels: HTTP and TCP endpoints through `ssh -R`, listed
// in tunnel_sessions with transport ssh; deleting the key closes the
// connection with a message.
func TestSSHReverseTunnels(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "")
	key := newSSHKey(t)
	credID := dev.addSSHCredential(t, key, nil)

	up := echoUpstream(t)
	name := "viassh." + dev.info.BaseDomain
	httpSSH, u := dev.sshForwarding(t, key, "443:localhost:"+upstreamPort(up), "http", "--url", "https://"+name)
	if want := "https://" + name + ":" + dev.httpsPort(); u != want {
		t.Fatalf("URL %q, want %q", u, want)
	}
	resp, body := get(t, dev.client(false), u+"/hello")
	if resp.StatusCode != 200 || !strings.Contains(body, "hello from upstream") {
		t.Fatalf("HTTP through ssh: %d %q", resp.StatusCode, body)
	}
	// HTTP/2 and several requests share the one SSH connection.
	for i := 0; i < 5; i++ {
		if err := getOK(dev.client(true), u+"/hello"); err != nil {
			t.Fatal(err)
		}
	}

	echo := startTCPEcho(t, false)
	tcpSSH, tu := dev.sshForwarding(t, key, "0:localhost:"+echo.port(), "tcp")
	checkEchoTransfer(t, tcpAddrOf(t, tu), 8<<20)
	// (-R 0 works only if the edge's reply named the allocated port and the
	// forwarded-tcpip channels repeat it: OpenSSH refuses them otherwise.)

	// tunnel_sessions shows both with transport ssh and the sshcr_ credential.
	var sshSessionIDs []string
	eventually(t, 10*time.Second, func() error {
		sshSessionIDs = nil
		status, resp := restJSON(t, dev.info.APIURL, dev.info.APIKey, http.MethodGet, "/tunnel_sessions", nil)
		if status != 200 {
			return fmt.Errorf("GET /tunnel_sessions: %d %v", status, resp)
		}
		list, _ := resp["tunnel_sessions"].([]any)
		n := 0
		for _, it := range list {
			m, _ := it.(map[string]any)
			cred, _ := m["credential"].(map[string]any)
			if m["transport"] == "ssh" && cred["id"] == credID {
				n++
				sshSessionIDs = append(sshSessionIDs, fmt.Sprint(m["id"]))
			}
		}
		if n != 2 {
			return fmt.Errorf("%d ssh sessions of %s in %v", n, credID, resp)
		}
		return nil
	})

	// Stopping one through the API closes that SSH connection with a
	// message; restarting is refused (an SSH client cannot restart itself).
	if status, resp := restJSON(t, dev.info.APIURL, dev.info.APIKey, http.MethodPost, "/tunnel_sessions/"+sshSessionIDs[0]+"/restart", nil); status != http.StatusConflict {
		t.Fatalf("restart of an SSH session: %d %v, want 409", status, resp)
	}
	if status, resp := restJSON(t, dev.info.APIURL, dev.info.APIKey, http.MethodPost, "/tunnel_sessions/"+sshSessionIDs[0]+"/stop", nil); status != http.StatusNoContent {
		t.Fatalf("stop of an SSH session: %d %v", status, resp)
	}
	var stopped, left *proc
	eventually(t, 10*time.Second, func() error {
		for i, p := range []*proc{httpSSH, tcpSSH} {
			if _, exited := p.wait(0); exited {
				stopped, left = p, []*proc{tcpSSH, httpSSH}[i]
				return nil
			}
		}
		return fmt.Errorf("no ssh client exited after the API stopped session %s", sshSessionIDs[0])
	})
	if !strings.Contains(stopped.output(), "stopped through the API") {
		t.Fatalf("stopped SSH client printed:\n%s", stopped.output())
	}

	// Deleting the key closes the other connection with a message.
	if status, resp := restJSON(t, dev.info.APIURL, dev.info.APIKey, http.MethodDelete, "/ssh_credentials/"+credID, nil); status != http.StatusNoContent {
		t.Fatalf("DELETE /ssh_credentials/%s: %d %v", credID, status, resp)
	}
	for _, p := range []*proc{left} {
		code, exited := p.wait(10 * time.Second)
		if !exited || code == 0 || !strings.Contains(p.output(), "TG_300") {
			t.Fatalf("after the key was deleted: exited %v with %d:\n%s", exited, code, p.output())
		}
	}
	eventually(t, 5*time.Second, func() error {
		resp, err := dev.client(false).Get(u + "/hello")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			return fmt.Errorf("status %d after the SSH session closed", resp.StatusCode)
		}
		return nil
	})
}

// TestSSHRefusals: an unknown key is refused; a key outside its bind ACL
// gets a message, whatever bind address the client sends; bad commands
// get usage.
func TestSSHRefusals(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "")
	up := echoUpstream(t)
	port := upstreamPort(up)

	t.Run("unknown key", func(t *testing.T) {
		p := dev.runSSH(t, newSSHKey(t), "443:localhost:"+port, "http")
		code, exited := p.wait(20 * time.Second)
		if !exited || code != 255 || !strings.Contains(p.output(), "Permission denied") {
			t.Fatalf("exited %v with %d:\n%s", exited, code, p.output())
		}
	})

	key := newSSHKey(t)
	allowed := "allowed." + dev.info.BaseDomain
	dev.addSSHCredential(t, key, []string{"bind:" + allowed})
	// The ACL allows exactly one name: a one-label -R bind name is a
	// subdomain of the base domain.
	p, u := dev.sshForwarding(t, key, "allowed:443:localhost:"+port, "http")
	if !strings.HasPrefix(u, "https://"+allowed) {
		t.Fatalf("URL %q", u)
	}
	if err := getOK(dev.client(false), u+"/hello"); err != nil {
		t.Fatal(err)
	}
	p.stop(5 * time.Second)

	cases := []struct {
		name, forward string
		command       []string
		want          string
	}{
		{"url outside ACL", "443:localhost:" + port, []string{"http", "--url", "https://other." + dev.info.BaseDomain}, "TG_619"},
		{"bind name outside ACL", "Other." + dev.info.BaseDomain + ".:443:localhost:" + port, []string{"http"}, "TG_619"},
		{"localhost bind is a random name", "localhost:443:localhost:" + port, []string{"http"}, "TG_619"},
		{"0.0.0.0 bind is a random name", "0.0.0.0:443:localhost:" + port, []string{"http"}, "TG_619"},
		{"random tcp address outside ACL", "0:localhost:" + port, []string{"tcp"}, "TG_619"},
		{"unknown command", "443:localhost:" + port, []string{"ftp"}, "TG_400"},
		{"unknown option", "443:localhost:" + port, []string{"http", "--frobnicate", "x"}, "TG_403"},
		{"no forward", "", []string{"http"}, "no remote forward"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := dev.runSSH(t, key, tc.forward, tc.command...)
			code, exited := p.wait(20 * time.Second)
			if !exited || code == 0 || !strings.Contains(p.output(), tc.want) {
				t.Fatalf("exited %v with %d, want %s:\n%s", exited, code, tc.want, p.output())
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		p := dev.runSSH(t, key, "", "help")
		code, exited := p.wait(20 * time.Second)
		if !exited || code != 0 || !strings.Contains(p.output(), "Usage: ssh -R") {
			t.Fatalf("exited %v with %d:\n%s", exited, code, p.output())
		}
	})
}

// TestSSHKeepaliveDetectsDeadClient freezes the ssh client (SIGSTOP): the
// edge's keepalives go unanswered, it closes the connection, and the TCP
// endpoint's port refuses connections.
func TestSSHKeepaliveDetectsDeadClient(t *testing.T) {
	requireSSH(t)
	dev := startDev(t, "", "--ssh-keepalive", "300ms")
	key := newSSHKey(t)
	dev.addSSHCredential(t, key, nil)
	echo := startTCPEcho(t, false)
	p, u := dev.sshForwarding(t, key, "0:localhost:"+echo.port(), "tcp")
	addr := tcpAddrOf(t, u)
	checkEchoTransfer(t, addr, 1<<20)
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) })
	eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return errors.New("the endpoint of a frozen ssh client still accepts connections")
		}
		return nil
	})
	dev.waitFor(regexp.MustCompile(`stopped answering keepalives`), 5*time.Second)
}
