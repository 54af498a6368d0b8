// Package config holds the schemas of Tollgate's configuration files, with
// their defaults and validation in one place. Today that is the agent's:
// its YAML file (AgentFile: LoadAgentFile, ParseAgentFile, SaveAgentFile,
// UpdateAgentFile, DefaultAgentFilePath), the settings that flags,
// environment variables and the file each give (AgentSettings,
// MergeAgentSettings), and the rules for every value they hold: endpoints
// (Endpoint.Validate, ParseEndpointURL, ParseUpstream), transports
// (ParseTransport), addresses (CheckServerAddr, ParseWebAddr,
// CheckListenAddr), logging (CheckLogLevel, CheckLogFormat) and root CA
// files (LoadRootCAs). The file has a key for every flag of the agent but
// --config (docs/agent-config.md). The file of tollgated will land beside it.
//
// Invariants:
//   - Decoding is strict: an unknown key, a second YAML document or an
//     unsupported version is refused, naming the line where YAML knows it.
//   - Every invalid value is a *codes.Error with codes.ConfigInvalid
//     (TG_9002) whose message says what to write instead; an unreadable root
//     CA file is codes.CAUnreadable (TG_9003). Secrets (authtokens, API keys,
//     basic-auth passwords) never appear in an error.
//   - Files are written atomically with mode 0600 in a directory of mode
//     0700; UpdateAgentFile keeps the file's other keys, order and comments.
//   - A leaf: no network I/O (it reads and writes files only), and it never
//     imports agent, edge, tunnel or controlplane; the agent converts to its
//     own types.
package config
