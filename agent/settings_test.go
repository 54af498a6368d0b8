package agent

import (
	"testing"

	"github.com/tollgate/tollgate/config"
)

func ptr(s string) *string { return &s }

func TestSettingsPrecedence(t *testing.T) {
	one := 1
	flags := config.AgentSettings{Authtoken: ptr("flag-token"), Transport: ptr("tcp"), HAConnections: &one}
	env := config.AgentSettingsFromEnv(func(k string) string {
		return map[string]string{
			config.EnvAuthtoken:  "env-token",
			config.EnvServerAddr: "env.example.com:4443",
			config.EnvRootCA:     "", // empty counts as not given
		}[k]
	})
	file := (&config.AgentFile{
		Authtoken:     "file-token",
		ServerAddr:    "file.example.com:4443",
		RootCA:        "/file/ca.pem",
		Transport:     "quic",
		Region:        "eu",
		HAConnections: 3,
	}).Settings()

	var c Config
	c.Apply(config.MergeAgentSettings(flags, env, file))
	want := Config{
		Authtoken:  "flag-token",           // flag beats env and file
		ServerAddr: "env.example.com:4443", // env beats file
		RootCAFile: "/file/ca.pem",         // empty env var does not hide the file
		Transport:  "tcp",
		Region:     "eu",
		WebAddr:    config.DefaultWebAddr, // given nowhere
	}
	if c.Authtoken != want.Authtoken || c.ServerAddr != want.ServerAddr || c.RootCAFile != want.RootCAFile ||
		c.Transport != want.Transport || c.Region != want.Region || c.WebAddr != want.WebAddr {
		t.Fatalf("merged config = %+v, want %+v", c, want)
	}

	if c.HAConnections != 1 {
		t.Fatalf("HAConnections = %d, want the flag's 1 over the file's 3", c.HAConnections)
	}
	c.Apply(config.MergeAgentSettings(config.AgentSettings{}, file))
	if c.HAConnections != 3 {
		t.Fatalf("HAConnections = %d, want the file's 3", c.HAConnections)
	}
	// An explicit "false" web address wins over the default.
	c.Apply(config.MergeAgentSettings(config.AgentSettings{WebAddr: ptr("false")}, file))
	if c.WebAddr != "false" {
		t.Fatalf("WebAddr = %q", c.WebAddr)
	}
	// Nothing given anywhere.
	var empty Config
	empty.Apply(config.MergeAgentSettings())
	if empty.Authtoken != "" || empty.WebAddr != config.DefaultWebAddr || empty.HAConnections != 0 {
		t.Fatalf("empty = %+v", empty)
	}
}
