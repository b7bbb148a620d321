// Command proxymatic-sync compiles Marathon and registrator state into services.yaml.
package main

import (
	"os"

	"github.com/meltwater/proxymatic/pkg/cli"
	"github.com/meltwater/proxymatic/pkg/cli/synccmd"
)

func main() {
	env := cli.OSEnv()
	os.Exit(cli.Execute(synccmd.New(env), env))
}
