package agent

import "testing"

func ptr(s string) *string { return &s }

func TestSettingsPrecedence(t *testing.T) {
	flags := Settings{Authtoken: ptr("flag-token"), Transport: ptr("tcp")}
	env := EnvSettings(func(k string) string {
		return map[string]string{
			EnvAuthtoken:  "env-token",
			EnvServerAddr: "env.example.com:4443",
			EnvRootCA:     "", // empty counts as not given
		}[k]
	})
	file := (&File{
		Authtoken:  "file-token",
		ServerAddr: "file.example.com:4443",
		RootCA:     "/file/ca.pem",
		Transport:  "quic",
		Region:     "eu",
	}).Settings()

	var c Config
	MergeSettings(flags, env, file).Apply(&c)
	want := Config{
		Authtoken:  "flag-token",           // flag beats env and file
		ServerAddr: "env.example.com:4443", // env beats file
		RootCAFile: "/file/ca.pem",         // empty env var does not hide the file
		Transport:  "tcp",
		Region:     "eu",
		WebAddr:    DefaultWebAddr, // given nowhere
	}
	if c.Authtoken != want.Authtoken || c.ServerAddr != want.ServerAddr || c.RootCAFile != want.RootCAFile ||
		c.Transport != want.Transport || c.Region != want.Region || c.WebAddr != want.WebAddr {
		t.Fatalf("merged config = %+v, want %+v", c, want)
	}

	// An explicit "false" web address wins over the default.
	MergeSettings(Settings{WebAddr: ptr("false")}, file).Apply(&c)
	if c.WebAddr != "false" {
		t.Fatalf("WebAddr = %q", c.WebAddr)
	}
	// Nothing given anywhere.
	var empty Config
	MergeSettings().Apply(&empty)
	if empty.Authtoken != "" || empty.WebAddr != DefaultWebAddr {
		t.Fatalf("empty = %+v", empty)
	}
}
