package connect_test

import "fmt"

// runHelper runs one helper role in a re-executed test binary.
func runHelper(role string) error {
	return fmt.Errorf("unknown helper role %q", role)
}
