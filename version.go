package iii

// Version is the version of this SDK: the one place a release bumps. It is
// reported to the engine in the worker metadata (WorkerMetadata.Version,
// unless set) and as the instrumentation version of the SDK's telemetry,
// and it is the newest release in CHANGELOG.md. The implementation
// packages (actors, channel, connection, invocation, otelws, registry)
// carry no version of their own: they follow this one.
const Version = "0.1.0"
