// Package archtest holds the tests that keep the repository's structure
// honest: every package says what it is for. It has no code of its own.
package archtest
