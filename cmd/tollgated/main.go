// Command tollgated runs Tollgate's servers: `tollgated dev` runs the
// control plane and one edge in one process on an embedded store;
// `tollgated control` runs the control plane alone; `tollgated edge` runs
// one regional edge that follows it. `tollgated config` checks a
// configuration file and prints its reference.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/internal/buildinfo"
	"github.com/tollgate/tollgate/internal/cpuprofile"
)

//go:generate go run . config reference --output ../../docs/tollgated-config.md

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	// Everything tollgated writes (store, keys, certificates, dev.json) is
	// private to its user.
	privateUmask()
	stopProfile := cpuprofile.Start()
	err := newRootCommand().Execute()
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tollgated:", err)
		var ce *codes.Error
		if errors.As(err, &ce) && ce.Code == codes.ConfigInvalid {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// newRootCommand is the tollgated command tree.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tollgated",
		Short: "Tollgate servers: control plane and regional edges",
		Long: `tollgated runs Tollgate, a self-hostable edge access gateway.

Agents behind NAT dial out to an edge with an authtoken; the edge gives them
public HTTPS endpoints and admits only what the account's credentials and
policies allow, decided from a cached control-plane snapshot.

control, edge and dev take their flags from a YAML file too (--config FILE;
flags on the command line win): see 'tollgated config --help'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDevCommand(), newControlCommand(), newEdgeCommand(), newConfigCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go version and the commit it was built from",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), buildinfo.Read("tollgated", version).String())
		},
	})
	return root
}
