/// Namespace for replaying and exporting verified bundles.
public enum Replay {}
