"""Stage logic: what each function does with one message. Handlers in functions/ are thin wrappers."""
