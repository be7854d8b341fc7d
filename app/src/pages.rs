pub mod connect_problem;
pub mod connection;
pub mod home;
pub mod login;
pub mod not_found;
pub mod signup;
