// Package imagebuilder is the engine that turns a base root filesystem plus a
// cluster bundle into host images. The pipeline lives in imagebuilder/build,
// the disk writer in imagebuilder/disk, the QEMU runner in imagebuilder/qemu
// and the command line in imagebuilder/cmd/imagebuilder.
package imagebuilder
