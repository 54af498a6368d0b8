// Command tollgated runs Tollgate's servers: `tollgated dev` runs the
// control plane and one edge in one process on an embedded store;
// `tollgated control` runs the control plane alone; `tollgated edge` runs
// one regional edge that follows it.
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/internal/cpuprofile"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	// Everything tollgated writes (store, keys, certificates, dev.json) is
	// private to its user.
	syscall.Umask(0o077)
	stopProfile := cpuprofile.Start()
	root := &cobra.Command{
		Use:   "tollgated",
		Short: "Tollgate servers: control plane and regional edges",
		Long: `tollgated runs Tollgate, a self-hostable edge access gateway.

Agents behind NAT dial out to an edge with an authtoken; the edge gives them
public HTTPS endpoints and admits only what the account's credentials and
policies allow, decided from a cached control-plane snapshot.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDevCommand(), newControlCommand(), newEdgeCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "tollgated", version) },
	})
	err := root.Execute()
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
