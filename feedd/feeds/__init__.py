"""RSS and Atom output.

``title`` makes readable titles, ``render`` turns articles into feed bytes,
``write`` publishes them as static files. Import from those modules: a name
re-exported here (``render``) would shadow the module of the same name.
"""
