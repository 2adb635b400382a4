"""The app's stacks; each composes constructs from stacks/constructs and wires their grants."""
