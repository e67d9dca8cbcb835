"""Surface syntax: the Lark grammar, the AST, and the text <-> AST round trip."""
