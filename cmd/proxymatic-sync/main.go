// Command proxymatic-sync compiles Marathon and registrator state into services.yaml.
package main

import (
	"os"

	"github.com/meltwater/proxymatic/pkg/cli"
)

func main() {
	env := cli.OSEnv()
	os.Exit(cli.Execute(cli.NewSync(env), env))
}
