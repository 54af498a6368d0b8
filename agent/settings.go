package agent

// Environment variables the agent reads (flag > environment > config file).
const (
	EnvAuthtoken  = "TOLLGATE_AUTHTOKEN"
	EnvServerAddr = "TOLLGATE_SERVER_ADDR"
	EnvRootCA     = "TOLLGATE_ROOT_CA"
)

// DefaultWebAddr is the inspection API address when none is given.
const DefaultWebAddr = "127.0.0.1:4040"

// Settings are the agent-wide values that command-line flags, environment
// variables and the config file can each give. A nil field was not given
// at that layer; MergeSettings picks the first layer that gives a value.
type Settings struct {
	Authtoken  *string
	ServerAddr *string
	RootCA     *string
	Transport  *string
	Region     *string
	WebAddr    *string
}

// EnvSettings returns the values given by TOLLGATE_AUTHTOKEN,
// TOLLGATE_SERVER_ADDR and TOLLGATE_ROOT_CA; an empty variable counts as
// not given. getenv is os.Getenv in production.
func EnvSettings(getenv func(string) string) Settings {
	get := func(k string) *string {
		if v := getenv(k); v != "" {
			return &v
		}
		return nil
	}
	return Settings{
		Authtoken:  get(EnvAuthtoken),
		ServerAddr: get(EnvServerAddr),
		RootCA:     get(EnvRootCA),
	}
}

// MergeSettings returns, field by field, the value of the first layer that
// gives one: call it as MergeSettings(flags, env, file).
func MergeSettings(layers ...Settings) Settings {
	var out Settings
	pick := func(dst **string, v *string) {
		if *dst == nil && v != nil {
			*dst = v
		}
	}
	for _, l := range layers {
		pick(&out.Authtoken, l.Authtoken)
		pick(&out.ServerAddr, l.ServerAddr)
		pick(&out.RootCA, l.RootCA)
		pick(&out.Transport, l.Transport)
		pick(&out.Region, l.Region)
		pick(&out.WebAddr, l.WebAddr)
	}
	return out
}

// Apply copies the given values into c. An absent WebAddr becomes
// DefaultWebAddr; an absent Transport stays "" (auto).
func (s Settings) Apply(c *Config) {
	val := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	c.Authtoken = val(s.Authtoken)
	c.ServerAddr = val(s.ServerAddr)
	c.RootCAFile = val(s.RootCA)
	c.Transport = val(s.Transport)
	c.Region = val(s.Region)
	c.WebAddr = DefaultWebAddr
	if s.WebAddr != nil {
		c.WebAddr = *s.WebAddr
	}
}
