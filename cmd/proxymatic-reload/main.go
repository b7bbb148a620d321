// Command proxymatic-reload runs HAProxy, nginx and pen from services.yaml.
package main

import (
	"os"

	"github.com/meltwater/proxymatic/pkg/cli"
)

func main() {
	env := cli.OSEnv()
	os.Exit(cli.Execute(cli.NewReload(env), env))
}
