"""The faces of sqlwright on the network: the HTTP API and web page (`sqlwright serve`), the MCP server
(`sqlwright mcp`), and what they share (security.py: bind, token, Host and body checks; databases.py: the
named databases a server offers).

    from sqlwright.serve.app import create_app        # needs the serve extra (FastAPI)
    from sqlwright.serve.service import Service

Nothing is imported here, so that `import sqlwright.serve.security` does not need FastAPI.
"""
