package main

// The built-in policies and handlers register themselves on import.
import _ "github.com/mcpgate/mcpgate/internal/builtin"
