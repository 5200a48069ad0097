// Command packer-plugin-imagebuilder is imagebuilder's Packer plugin: the
// builder "imagebuilder" (base + bundle → disk images, offline) and the
// provisioner "imagebuilder-bundle" (installs the cluster bundle on any
// builder's machine through its communicator).
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"imagebuilder/packer-plugin/builder/imagebuilder"
	"imagebuilder/packer-plugin/provisioner/bundle"
	"imagebuilder/packer-plugin/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder(plugin.DEFAULT_NAME, new(imagebuilder.Builder))
	pps.RegisterProvisioner("bundle", new(bundle.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
