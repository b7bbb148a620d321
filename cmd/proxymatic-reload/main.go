// Command proxymatic-reload runs HAProxy, nginx and pen from services.yaml.
package main

import (
	"os"

	"github.com/meltwater/proxymatic/pkg/cli"
	"github.com/meltwater/proxymatic/pkg/cli/reloadcmd"
)

func main() {
	env := cli.OSEnv()
	os.Exit(cli.Execute(reloadcmd.New(env), env))
}
