"""`diffc graph`: a view model built from the IR (view), rendered as DOT (dot), Mermaid (mermaid) and a
self-contained HTML page (html); render picks the format and runs Graphviz for SVG and PNG. No torch."""
