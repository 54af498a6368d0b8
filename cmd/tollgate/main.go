// Command tollgate is the Tollgate agent: it puts a local service on a
// public URL of a Tollgate edge. This package only parses flags and wires
// packages config (the config file, settings and their validation) and
// agent; see `tollgate --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/agent"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/internal/cpuprofile"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = agent.DefaultVersion

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the edge refused, or the agent failed
	exitUsage = 2 // bad flags, URL, upstream, CA file, web address, or an edge certificate no --root-ca verifies
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := cpuprofile.Start()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stopProfile()
	stop()
	os.Exit(code)
}

// exitErr carries the exit status chosen for an error.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// fail returns err with exitUsage for input problems, else exitError.
func fail(err error) error {
	if agent.IsUsageError(err) {
		return &exitErr{code: exitUsage, err: err}
	}
	return &exitErr{code: exitError, err: err}
}

// run executes the command line and returns the exit status. ctx ends on
// SIGINT/SIGTERM; getenv is os.Getenv outside tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	root := newRootCmd(&env{stdout: stdout, stderr: stderr, getenv: getenv})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "tollgate: %v\n", err)
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	// Flag and argument errors from cobra.
	fmt.Fprintln(stderr, "Run 'tollgate --help' for usage.")
	return exitUsage
}

// env is what commands read and write besides their flags.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	global         globalFlags
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "tollgate",
		Short: "Put a local service on a public URL of a Tollgate edge",
		Long: `tollgate connects outbound to a Tollgate edge and forwards each public
connection to a local upstream, so nothing needs an inbound port. It connects
over TLS on TCP first, and also tries QUIC on UDP when TCP fails or has not
connected within ` + agent.FallbackDelay.String() + `, keeping whichever connects first (--transport auto,
the default); --transport tcp or --transport quic uses only that one.

Settings come from flags, then environment variables (TOLLGATE_AUTHTOKEN,
TOLLGATE_SERVER_ADDR, TOLLGATE_ROOT_CA), then the config file
($TOLLGATE_CONFIG, else $XDG_CONFIG_HOME/tollgate/tollgate.yml, else
~/.config/tollgate/tollgate.yml).

While it runs, http://127.0.0.1:4040/inspect shows every HTTP request through
its endpoints and replays them, and the local API at /api/tunnels and
/api/requests/http serves the same as JSON (--inspect=false stops recording;
--web-addr false turns both off). When 4040 is taken the agent takes the next
free port and says which.`,
		Example: `  # Save your authtoken and your edge's address once:
  tollgate config add-authtoken 2Xk9..._s3cr3t --server-addr edge.example.com:4443

  # Put http://localhost:8080 on a public HTTPS URL:
  tollgate http 8080
  tollgate http 8080 --url https://app.example.com

  # Expose SSH on a TCP address, or pass TLS through unterminated:
  tollgate tcp 22
  tollgate tls 443 --url tls://app.example.com

  # Start endpoints defined in the config file:
  tollgate start web api
  tollgate start --all

  # Manage the account through the REST API:
  tollgate config add-api-key 2cSjw..._6Jxvym --api-url https://api.example.com
  tollgate api bot-users create --name ci`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Do not print "completion" as a command.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	e.global.register(root)
	root.AddCommand(
		newEndpointCmd(e, config.ProtoHTTP),
		newEndpointCmd(e, config.ProtoTCP),
		newEndpointCmd(e, config.ProtoTLS),
		newStartCmd(e),
		newConfigCmd(e),
		newAPICmd(e),
		newVersionCmd(e),
	)
	return root
}
