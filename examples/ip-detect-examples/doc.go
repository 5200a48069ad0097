// Package ipdetectexamples holds example ip-detect scripts (see README.md)
// and the tests that run them against fake metadata services and a fake
// "ip" command.
package ipdetectexamples
