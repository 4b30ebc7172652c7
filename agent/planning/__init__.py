"""The parts of the propose loop (`agent.loop`): what it reads first, how it calls the model,
what its read tools do, and how its write tools are recorded into a `Proposal`."""
