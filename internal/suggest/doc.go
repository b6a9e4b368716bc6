// Package suggest finds the known name a misspelt word was probably meant
// to be, for the "did you mean" hints of configuration and seccomp
// profile errors. It owns nothing else: callers word their own messages.
package suggest
