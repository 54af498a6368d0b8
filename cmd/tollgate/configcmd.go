package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/internal/buildinfo"
)

func newConfigCmd(e *env) *cobra.Command {
	cfg := &cobra.Command{
		Use:   "config",
		Short: "Edit the agent's config file",
	}
	cfg.AddCommand(&cobra.Command{
		Use:   "add-authtoken TOKEN",
		Short: "Save an authtoken (and optionally the edge address and CA) in the config file",
		Long: `Save TOKEN as the authtoken in the config file, creating the file (mode 0600)
if needed. With --server-addr and --root-ca, save those too. Other keys and
comments in the file are kept.`,
		Example: `  tollgate config add-authtoken 2Xk9..._s3cr3t
  tollgate config add-authtoken 2Xk9..._s3cr3t --server-addr edge.example.com:4443 --root-ca ./ca.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token := strings.TrimSpace(args[0])
			if token == "" {
				return fail(codes.NewError(codes.ConfigInvalid, "The authtoken is empty."))
			}
			set := map[string]string{"authtoken": token}
			g := &e.global
			flags := g.cmd.PersistentFlags()
			if flags.Changed("server-addr") {
				set["server_addr"] = g.serverAddr
			}
			if flags.Changed("root-ca") {
				ca := g.rootCA
				if ca != "" {
					if _, err := config.LoadRootCAs(ca); err != nil {
						return fail(err)
					}
					if abs, err := filepath.Abs(ca); err == nil {
						ca = abs
					}
				}
				set["root_ca"] = ca
			}
			return saveSettings(e, set, "Authtoken")
		},
	})
	cfg.AddCommand(newAddAPIKeyCmd(e))
	return cfg
}

// saveSettings writes set into the config file (config.UpdateAgentFile) and
// tells the user that what was saved there.
func saveSettings(e *env, set map[string]string, what string) error {
	path, err := e.global.filePath(e.getenv)
	if err != nil {
		return fail(err)
	}
	if err := config.UpdateAgentFile(path, set); err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "%s saved to %s\n", what, path)
	return nil
}

// newAddAPIKeyCmd is `config add-api-key KEY [--api-url URL]`.
func newAddAPIKeyCmd(e *env) *cobra.Command {
	var apiURL string
	cmd := &cobra.Command{
		Use:   "add-api-key KEY",
		Short: "Save an API key (and optionally the API's URL) in the config file for 'tollgate api'",
		Long: `Save KEY as api_key in the config file, creating the file (mode 0600) if
needed; 'tollgate api' uses it when neither --api-key nor TOLLGATE_API_KEY is
given. With --api-url, save the REST API's base URL as api_url too (default
` + config.DefaultAPIURL + `). Other keys and comments in the file are kept.`,
		Example: `  tollgate config add-api-key 2cSjwFetnZnRcG0B7U5fEYBX2V3_6Jxvym7aMW1jc41HTLpAc
  tollgate config add-api-key 2cSjw..._6Jxvym --api-url https://api.example.com`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := strings.TrimSpace(args[0])
			if key == "" {
				return fail(codes.NewError(codes.ConfigInvalid, "The API key is empty."))
			}
			set := map[string]string{"api_key": key}
			if cmd.Flags().Changed("api-url") {
				if apiURL != "" {
					c, err := newAPIClient(apiURL, key)
					if err != nil {
						return fail(codes.NewError(codes.ConfigInvalid, "%v.", err))
					}
					apiURL = c.base.String()
				}
				set["api_url"] = apiURL
			}
			return saveSettings(e, set, "API key")
		},
	}
	cmd.Flags().StringVar(&apiURL, "api-url", "", "base URL of the control plane's REST API, saved as api_url")
	return cmd
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent version, the Go version and the commit it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(e.stdout, buildinfo.Read("tollgate", version).String())
			return err
		},
	}
}
