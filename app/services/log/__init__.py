"""The log itself: the store and its tree, the published-checkpoint record, verification,
rebuild and replay, backup, keys and health."""
