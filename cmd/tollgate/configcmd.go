package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/agent"
	"github.com/tollgate/tollgate/config"
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
				return fail(config.NewError(config.CodeConfigInvalid, "The authtoken is empty."))
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
					if _, err := agent.LoadRootCAs(ca); err != nil {
						return fail(err)
					}
					if abs, err := filepath.Abs(ca); err == nil {
						ca = abs
					}
				}
				set["root_ca"] = ca
			}
			path, err := g.filePath(e.getenv)
			if err != nil {
				return fail(err)
			}
			if err := agent.UpdateFile(path, set); err != nil {
				return fail(err)
			}
			fmt.Fprintf(e.stdout, "Authtoken saved to %s\n", path)
			return nil
		},
	})
	return cfg
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(e.stdout, "tollgate %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
			return nil
		},
	}
}
