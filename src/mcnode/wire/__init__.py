"""The gRPC wire: schemas in proto/mcnode/wire/*.proto, generated code beside this file.

Regenerate after editing a schema (a test checks the committed code matches):

    python -m grpc_tools.protoc -Iproto --python_out=src --pyi_out=src \\
        --grpc_python_out=src proto/mcnode/wire/consensus.proto
"""
