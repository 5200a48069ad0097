// Package version is the plugin's version, reported to Packer by `describe`.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

// Version is the plugin's release; Prerelease is empty for releases so that
// `required_plugins` version constraints match it.
var (
	Version    = "0.1.0"
	Prerelease = ""

	PluginVersion = version.NewPluginVersion(Version, Prerelease, "")
)
