"""The messages each service serves on the bus, one module per service: what a caller
and its server share, so neither imports the other. Each message is a frozen dataclass
encoded as plain JSON (:mod:`strato.rpc.messages`); a handler table maps message types
to handlers, and a message travels under its class name, which is unique across these
modules."""
