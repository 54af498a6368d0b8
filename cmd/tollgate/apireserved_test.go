package main

import (
	"strings"
	"testing"
)

// TestAPIReservedDomainFlags: `reserved-domains create` offers the fields
// the API takes (certificate_management_policy, min_tls_version) and not
// certificate_id, which it refuses; the flags reach a real control plane.
func TestAPIReservedDomainFlags(t *testing.T) {
	for _, verb := range []string{"create", "update"} {
		code, out, _ := runCLI(t, nil, "api", "reserved-domains", verb, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", verb, code)
		}
		if strings.Contains(out, "--certificate-id") {
			t.Errorf("%s --help offers --certificate-id, which the API refuses:\n%s", verb, out)
		}
		for _, flag := range []string{"--certificate-authority", "--private-key-type", "--no-certificate", "--min-tls-version"} {
			if !strings.Contains(out, flag) {
				t.Errorf("%s --help lacks %s", verb, flag)
			}
		}
	}

	base, key := realAPI(t)
	env := map[string]string{"TOLLGATE_API_KEY": key, "TOLLGATE_API_URL": base}
	rd := apiJSON(t, env, "reserved-domains", "create", "--domain", "ecdsa.example.com", "--private-key-type", "ecdsa", "--min-tls-version", "1.3")
	pol, _ := rd["certificate_management_policy"].(map[string]any)
	if pol["authority"] != "letsencrypt" || pol["private_key_type"] != "ecdsa" || rd["min_tls_version"] != "1.3" {
		t.Fatalf("create --private-key-type ecdsa --min-tls-version 1.3: %v", rd)
	}
	rd = apiJSON(t, env, "reserved-domains", "update", rd["id"].(string), "--no-certificate")
	if rd["certificate_management_policy"] != nil {
		t.Fatalf("update --no-certificate: %v", rd)
	}
	rd = apiJSON(t, env, "reserved-domains", "update", rd["id"].(string), "--certificate-authority", "letsencrypt", "--private-key-type", "rsa")
	if pol, _ := rd["certificate_management_policy"].(map[string]any); pol["private_key_type"] != "rsa" {
		t.Fatalf("update --private-key-type rsa: %v", rd)
	}
	rd = apiJSON(t, env, "reserved-domains", "create", "--domain", "none.example.com", "--no-certificate")
	if rd["certificate_management_policy"] != nil {
		t.Fatalf("create --no-certificate: %v", rd)
	}
	// The API's own check of the values.
	code, _, errOut := runCLI(t, env, "api", "reserved-domains", "create", "--domain", "dsa.example.com", "--private-key-type", "dsa")
	if code != exitError || !strings.Contains(errOut, "Unknown private key type") {
		t.Fatalf("--private-key-type dsa: %d %q", code, errOut)
	}
	// Contradictory flags never reach the API.
	code, _, errOut = runCLI(t, env, "api", "reserved-domains", "create", "--domain", "x.example.com", "--no-certificate", "--private-key-type", "ecdsa")
	if code != exitUsage || !strings.Contains(errOut, "cannot go together") {
		t.Fatalf("--no-certificate with --private-key-type: %d %q", code, errOut)
	}
	list := apiJSON(t, env, "reserved-domains", "list")
	if items, _ := list["reserved_domains"].([]any); len(items) != 2 {
		t.Fatalf("reserved domains after a refused create: %v", list)
	}
}
