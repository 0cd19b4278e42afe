/// kvlab's version, written into session headers and printed by `kvlab --version`.
public let kvlabVersion = "0.1.0"
