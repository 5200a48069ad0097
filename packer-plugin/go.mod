module imagebuilder/packer-plugin

go 1.26

require imagebuilder v0.0.0

require github.com/hashicorp/packer-plugin-sdk v0.6.7 // indirect

replace imagebuilder => ../

replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3
