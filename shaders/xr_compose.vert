#version 430 core
// Full-screen triangle (no vertex buffers): the headset compose pass draws one per eye.
void main() {
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
