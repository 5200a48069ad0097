package genconf

import _ "embed"

// Schema is the JSON Schema of config.yaml (schema/config.schema.json).
//
//go:embed schema/config.schema.json
var Schema []byte
